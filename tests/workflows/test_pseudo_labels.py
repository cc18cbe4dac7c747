"""`train --pseudo-labels RUN [--pseudo-threshold P]`: confident test predictions of a finished run join training."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import CIFAR_RUN_ARGS, assert_one_line_error, run_cli

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.data.cache import load_images
from kaggle_kit.data.layout import open_layout
from kaggle_kit.inference.loading import load_run
from kaggle_kit.inference.predict import calibrated_test_probabilities
from kaggle_kit.records.run_folder import RunDir

TINY = [*CIFAR_RUN_ARGS, "--epochs", "1"]  # the last --epochs wins


@pytest.fixture(scope="module")
def weak_source(sample_zips, tmp_path_factory):
    """A one-epoch CIFAR run at a low rate. The shared `cifar_run` validates perfectly on the generated sample, so
    its fitted temperature saturates every test probability to 1.0 and no threshold could split them; this one's
    calibrated confidences spread out."""
    out = tmp_path_factory.mktemp("pseudo-source") / "run"
    result = run_cli(
        "train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", out, *TINY, "--lr", "0.002",
        "--no-analyze",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def source_probabilities(weak_source, sample_zips):
    """The source run's calibrated test probabilities, as `predict` computes them (the reference)."""
    loaded = load_run(weak_source, "best", "cpu")
    layout = open_layout(resolve("cifar10"), sample_zips["cifar10"])
    return calibrated_test_probabilities(loaded, layout, calibrated=True)


@pytest.fixture(scope="module")
def pseudo_run(weak_source, sample_zips, source_probabilities, tmp_path_factory):
    """(run folder, threshold, result) of a one-epoch run trained with the CIFAR run's pseudo-labels."""
    # one of the confidences themselves (written exactly), in the middle, so some images pass and some do not
    confidences = np.unique(source_probabilities.probabilities.max(1))
    assert len(confidences) > 2, confidences
    threshold = float(confidences[len(confidences) // 2])
    out = tmp_path_factory.mktemp("pseudo") / "run"
    result = run_cli(
        "train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", out, *TINY, "--no-analyze",
        "--pseudo-labels", weak_source, "--pseudo-threshold", repr(threshold),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out, threshold, result


def test_pseudo_labels_are_the_confident_test_images_with_their_argmax(pseudo_run, source_probabilities, weak_source):
    out, threshold, result = pseudo_run
    chosen = pd.read_csv(out / "pseudo_labels.csv", dtype=str)
    reference = source_probabilities
    confident = reference.probabilities.max(1) >= threshold
    expected = pd.DataFrame(
        {
            "id": np.asarray(reference.ids)[confident],
            "label": np.asarray(RunDir(out).read_config().classes)[reference.probabilities[confident].argmax(1)],
        }
    )
    assert 0 < len(chosen) < len(reference.ids)
    pd.testing.assert_frame_equal(chosen.reset_index(drop=True), expected.reset_index(drop=True))
    record = json.loads((out / "config.json").read_text())["pseudo_labels"]
    source_config = RunDir(weak_source).read_config()
    assert record["source"] == str(weak_source.resolve()) and record["source_kind"] == "run"
    assert record["threshold"] == threshold and record["count"] == len(chosen)
    assert record["source_fingerprint"] == source_config.fingerprint
    assert record["per_class"] == {c: int((chosen["label"] == c).sum()) for c in source_config.classes}
    assert record["source_temperature"] == pytest.approx(source_config.temperature)
    assert f"pseudo-labels: {len(chosen)} of {len(reference.ids)} test images" in result.stderr


def test_pseudo_images_train_and_never_validate(pseudo_run, weak_source, sample_zips):
    """Resume's view of the run: the stored set is read back, appended to training alone, with the test pixels."""
    from kaggle_kit.training.setup import prepare

    out, _, _ = pseudo_run
    copy = shutil.copytree(out, out.parent / "resumed")
    config = RunDir(copy).read_config()
    comp = resolve("cifar10")
    layout = open_layout(comp, sample_zips["cifar10"])
    setup, _ = prepare(comp, layout, config.recipe, RunDir(copy), resume=True, resolution=None)
    data, n_train = setup.data, len(layout.train.ids)
    chosen = pd.read_csv(out / "pseudo_labels.csv", dtype=str)
    assert data.ids[n_train:] == chosen["id"].tolist()
    assert [config.classes[k] for k in data.labels[n_train:]] == chosen["label"].tolist()
    pseudo_positions = set(range(n_train, n_train + len(chosen)))
    assert pseudo_positions <= set(data.train_idx.tolist())
    assert not pseudo_positions & set(data.val_idx.tolist())
    # the validation split is the labelled images' own, and the same as the source run's (same seed, fraction)
    assert json.loads((out / "split.json").read_text()) == json.loads((weak_source / "split.json").read_text())
    assert set(RunDir(out).val_predictions()[0]) == set(json.loads((out / "split.json").read_text())["val_ids"])
    test = load_images(layout, "test", config.recipe.cache_side, skip_bad=True)
    first = test.ids.index(chosen["id"].iloc[0])
    assert np.array_equal(data.train_cache[n_train], test[first])


def test_another_competitions_run_is_refused(cifar_run, sample_zips, tmp_path):
    out = tmp_path / "dog"
    result = run_cli(
        "train", "dog_breed", "--data-dir", sample_zips["dog_breed"], "--out", out, "--pseudo-labels", cifar_run[0]
    )
    assert_one_line_error(result, "--pseudo-labels", "cifar10", "dog_breed")
    assert not out.exists()


def test_a_run_on_other_data_is_refused(cifar_run, tmp_path):
    other = write_sample(resolve("cifar10"), tmp_path / "other", n_train=40, n_test=20, seed=3).parent
    result = run_cli("train", "cifar10", "--data-dir", other, *TINY, "--pseudo-labels", cifar_run[0])
    assert_one_line_error(result, "--pseudo-labels", "other data", "fingerprint")


@pytest.mark.parametrize("threshold", ["0", "1.5", "nan"])
def test_threshold_outside_zero_one_is_refused(cifar_run, sample_zips, threshold):
    result = run_cli(
        "train", "cifar10", "--data-dir", sample_zips["cifar10"], *TINY,
        "--pseudo-labels", cifar_run[0], "--pseudo-threshold", threshold,
    )  # fmt: skip
    assert_one_line_error(result, "--pseudo-threshold", "(0, 1]")


def test_source_without_predictions_and_misplaced_flags_are_refused(cifar_run, sample_zips, tmp_path):
    data = ["--data-dir", sample_zips["cifar10"]]
    no_best = shutil.copytree(cifar_run[0], tmp_path / "no-best")
    (no_best / "best.pt").unlink()
    result = run_cli("train", "cifar10", *data, *TINY, "--pseudo-labels", no_best)
    assert_one_line_error(result, "no best.pt", "no test predictions")
    result = run_cli("train", "cifar10", *data, *TINY, "--pseudo-labels", tmp_path)
    assert_one_line_error(result, "not a run folder")
    result = run_cli("train", "cifar10", *data, *TINY, "--pseudo-threshold", "0.8")
    assert_one_line_error(result, "--pseudo-threshold needs --pseudo-labels")
    result = run_cli("train", "--resume", cifar_run[0], "--pseudo-labels", cifar_run[0])
    assert_one_line_error(result, "--resume", "--pseudo-labels")


def test_a_threshold_no_image_reaches_and_a_bad_flag_are_refused(weak_source, source_probabilities, sample_zips):
    data = ["--data-dir", sample_zips["cifar10"]]
    top = float(source_probabilities.probabilities.max())
    assert top < 1.0, "the weak source is not sure of anything"
    result = run_cli("train", "cifar10", *data, *TINY, "--pseudo-labels", weak_source, "--pseudo-threshold", "1")
    assert_one_line_error(result, "no test image", "reaches --pseudo-threshold 1", f"{top:.3f}", "lower")
    # with progress lines on, a prediction of the test set would show: the flag fails before it
    progress = {"KAGGLE_KIT_PROGRESS": "1"}
    result = run_cli(
        "train", "cifar10", *data, *TINY, "--arch", "resnet33", "--pseudo-labels", weak_source, env=progress
    )
    assert_one_line_error(result, "resnet34")
    assert "predicting" not in result.stderr


def test_one_choice_of_images_fixes_validation_and_adds_pseudo_images(tiny_cifar):
    """`TrainingImages`: a fold's validation ids and pseudo-labelled test images, handed down as one object, become
    exactly that split: those ids validate, the rest train, the test images join training alone."""
    from kaggle_kit.data.batches import prepare_data
    from kaggle_kit.data.split import stratified_split
    from kaggle_kit.data.training_images import TrainingImages
    from kaggle_kit.records.pseudo_labels import PseudoLabels

    comp = resolve("cifar10")
    layout = open_layout(comp, tiny_cifar)
    recipe = comp.recipe().replace(val_fraction=0.5)  # the fixed ids outrank the fraction
    val_ids = tuple(layout.train.ids[::7])
    test_ids = tuple(layout.test.ids[3:8])
    pseudo = PseudoLabels(
        ids=test_ids,
        labels=np.arange(len(test_ids), dtype=np.int64),
        classes=tuple(layout.classes),
        source="made-up",
        source_kind="run",
        source_fingerprint=layout.fingerprint(),
        threshold=0.9,
        test_images=len(layout.test.ids),
    )
    images = TrainingImages(val_ids=val_ids, pseudo=pseudo)
    assert images.added == len(test_ids)
    data = prepare_data(layout, recipe, None, resume=False, images=images)
    n_train = len(layout.train.ids)
    assert [data.ids[i] for i in data.val_idx] == list(val_ids)
    assert sorted(data.train_idx.tolist()) == sorted(set(range(n_train + len(test_ids))) - set(data.val_idx.tolist()))
    assert data.ids[n_train:] == list(test_ids) and data.labels[n_train:].tolist() == list(range(len(test_ids)))
    # no choice: the labelled images alone, the recipe's seeded split of its fraction
    plain = prepare_data(layout, recipe, None, resume=False)
    expected = stratified_split(layout.train_labels, 0.5, recipe.seed)
    assert len(plain.ids) == n_train and np.array_equal(plain.val_idx, expected[1])


def test_joined_caches_are_reused_and_cleared_once_unused(pseudo_run, weak_source, source_probabilities, sample_zips):
    """The same source, threshold and data reuse one joined cache (no rebuild, no growth); a cache a run still reads
    survives another selection, and goes at the next run once released."""
    from kaggle_kit.training.setup import prepare

    out, threshold, _ = pseudo_run
    cache_folder = open_layout(resolve("cifar10"), sample_zips["cifar10"]).work_dir / "cache"

    def joined():
        return {p.name: p.joinpath("pixels.u8").stat().st_ino for p in cache_folder.glob("joined-*")}

    # a run reading the first selection (resume's view of it) holds its cache while another is trained
    config, comp = RunDir(out).read_config(), resolve("cifar10")
    layout = open_layout(comp, sample_zips["cifar10"])
    held, _ = prepare(comp, layout, config.recipe, RunDir(shutil.copytree(out, out.parent / "held")), True, None)
    first = joined()
    assert list(first) == [held.data.train_cache.path.name]
    confidences = np.unique(source_probabilities.probabilities.max(1))
    other = float(confidences[len(confidences) // 2 + 1])  # one image fewer: another selection

    def train_with(threshold, name):
        result = run_cli(
            "train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", out.parent / name, *TINY,
            "--no-analyze", "--pseudo-labels", weak_source, "--pseudo-threshold", repr(threshold),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    train_with(other, "other")
    second = joined()
    assert len(second) == 2 and first.items() <= second.items()  # the held one survives
    held.data.train_cache.release()
    train_with(other, "other-again")
    assert joined() == {name: ino for name, ino in second.items() if name not in first}  # reused; the released gone
