"""Predict from a run: exact submission files for both competitions, TTA views, temperature calibration,
scoring a run, atomic writes and the commands' exit codes. Runs are tiny (test_resnet, one epoch)."""

import dataclasses
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_one_line_error, run_cli

from kaggle_kit.competitions.bootstrap import Interval
from kaggle_kit.competitions.declaration import dump
from kaggle_kit.competitions.metrics import QWK, log_loss, one_hot_grades, softmax
from kaggle_kit.competitions.posthoc import TemperatureFit, cross_fit
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.config.recipe import Recipe
from kaggle_kit.core.errors import KitError
from kaggle_kit.data.cache import load_images
from kaggle_kit.inference import calibration, scoring
from kaggle_kit.inference.calibration import calibrate_run
from kaggle_kit.inference.loading import load_run, open_run_layout
from kaggle_kit.inference.predict import predict_run
from kaggle_kit.inference.scoring import score_run
from kaggle_kit.inference.streaming import IDENTITY, apply_view, stream_logits, tta_views
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.submissions import files as sub
from kaggle_kit.training import train

torch.set_num_threads(1)

CIFAR = resolve("cifar10")
DOG = resolve("dog_breed")
CIFAR_TEST = 60
DOG_TEST = 30
TINY = dict(epochs=1, batch_size=64, arch="test_resnet", workers=0, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One trained run per competition on a small generated download (never modified: copy first)."""
    root = tmp_path_factory.mktemp("predict")
    write_sample(CIFAR, root / "cifar-data", n_train=200, n_test=CIFAR_TEST)
    write_sample(DOG, root / "dog-data", n_train=240, n_test=DOG_TEST)
    train("cifar10", root / "cifar-data", out=root / "cifar-run", img_size=32, **TINY)
    # the dog recipe fine-tunes ImageNet weights; here a random-init model, 64 px crops of a 72 px resize
    train(
        "dog_breed",
        root / "dog-data",
        out=root / "dog-run",
        img_size=64,
        eval_resize=72,
        pretrained=False,
        freeze=False,
        unfreeze_after=None,
        **TINY,
    )
    return types.SimpleNamespace(
        root=root,
        cifar=root / "cifar-run",
        dog=root / "dog-run",
        cifar_data=root / "cifar-data",
        dog_data=root / "dog-data",
    )


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def sample_header(data: Path, comp) -> bytes:
    return (data / comp.sample_file).read_bytes().split(b"\n", 1)[0]


def cli(capsys, *args) -> types.SimpleNamespace:
    """The CLI in this process (no interpreter start-up): conftest's runner."""
    return run_cli(*args)


# ------------------------------------------------------------------------------------ exact format


def test_cifar_submission_is_exact_with_every_unscored_id(runs, tmp_path):
    run = copy_run(runs.cifar, tmp_path)
    out = tmp_path / "out" / "cifar.csv"
    result = predict_run(run, runs.cifar_data, out=out, device="cpu")
    assert result.path == out and result.rows == CIFAR_TEST
    body = out.read_bytes()
    assert body.split(b"\n", 1)[0] == sample_header(runs.cifar_data, CIFAR) == b"id,label"
    written = pd.read_csv(out, dtype=str)
    sample = pd.read_csv(runs.cifar_data / CIFAR.sample_file, dtype=str)
    assert written["id"].tolist() == sample["id"].tolist() == [str(i) for i in range(1, CIFAR_TEST + 1)]
    answers = pd.read_csv(runs.cifar_data / "answers.csv", dtype=str)
    assert len(answers) < len(written)  # the junk (unscored) test images still get a row
    assert set(written["label"]) <= set(CIFAR.declared_classes)
    assert sub.validate(out, CIFAR, runs.cifar_data / CIFAR.sample_file) == []
    assert [p.name for p in out.parent.iterdir()] == ["cifar.csv"]  # no staging file left behind


def test_dog_submission_is_exact_and_rows_sum_to_one(runs, tmp_path):
    run = copy_run(runs.dog, tmp_path)
    out = tmp_path / "dog.csv"
    result = predict_run(run, runs.dog_data, out=out, device="cpu")
    assert result.rows == DOG_TEST
    assert out.read_bytes().split(b"\n", 1)[0] == sample_header(runs.dog_data, DOG)
    written = pd.read_csv(out, dtype={"id": str})
    sample = pd.read_csv(runs.dog_data / DOG.sample_file, dtype={"id": str})
    assert written["id"].tolist() == sample["id"].tolist()
    assert list(written.columns) == list(sample.columns) and len(written.columns) == 121
    probs = written.iloc[:, 1:].to_numpy()
    assert np.abs(probs.sum(axis=1) - 1).max() < 1e-12 and (probs > 0).all()
    # full precision: the written text parses back to exactly the probabilities predict computed
    loaded = load_run(run, device="cpu")
    layout = open_run_layout(loaded, runs.dog_data)
    cache = load_images(layout, "test", loaded.recipe.cache_side)
    logits = stream_logits(
        loaded.model, cache, np.arange(len(cache)), loaded.recipe, loaded.mean, loaded.std, loaded.device, result.views
    )
    expected = softmax(logits.mean, result.temperature)
    expected = expected / expected.sum(axis=1, keepdims=True)
    assert np.array_equal(probs, expected)


# ------------------------------------------------------------------------------------ TTA


def test_tta_views_per_competition():
    assert tta_views(CIFAR, Recipe(img_size=32)) == (
        IDENTITY,
        "hflip",
        "shift-left",
        "shift-right",
        "shift-up",
        "shift-down",
    )
    assert tta_views(CIFAR, Recipe(img_size=64)) == (IDENTITY, "hflip")  # upscaled CIFAR: no longer native size
    assert tta_views(DOG, Recipe(img_size=224)) == (IDENTITY, "hflip")


def test_views_flip_and_shift_with_reflection():
    x = torch.arange(25, dtype=torch.float32).view(1, 1, 5, 5)
    assert torch.equal(apply_view(x, IDENTITY), x)
    assert torch.equal(apply_view(x, "hflip"), x.flip(-1))
    right = apply_view(x, "shift-right")
    assert torch.equal(right[..., :, 2:], x[..., :, :3])  # content moved 2 px right
    assert torch.equal(right[..., :, :2], x[..., :, [2, 1]])  # the uncovered border reflects the image
    down = apply_view(x, "shift-down")
    assert torch.equal(down[..., 2:, :], x[..., :3, :])
    assert torch.equal(apply_view(apply_view(x, "shift-left"), "shift-right")[..., 2:3, 2:3], x[..., 2:3, 2:3])
    with pytest.raises(ValueError):
        apply_view(x, "rotate")


def test_tta_averages_the_views_logits(runs):
    loaded = load_run(runs.cifar, device="cpu")
    layout = open_run_layout(loaded, runs.cifar_data)
    cache = load_images(layout, "test", 32)
    views = tta_views(CIFAR, loaded.recipe)
    indices = np.arange(10)
    logits = stream_logits(loaded.model, cache, indices, loaded.recipe, loaded.mean, loaded.std, loaded.device, views)
    assert logits.views == views and len(views) == 6 and logits.mean.shape == (10, 10)
    per_view = [
        stream_logits(
            loaded.model, cache, indices, loaded.recipe, loaded.mean, loaded.std, loaded.device, (IDENTITY,)
        ).mean
    ]
    x = (
        torch.from_numpy(np.array(cache.uniform_array()[:10])).permute(0, 3, 1, 2).float() / 255
        - torch.tensor(loaded.mean).view(1, 3, 1, 1)
    ) / torch.tensor(loaded.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        per_view += [loaded.model(apply_view(x, v)).numpy() for v in views[1:]]
    np.testing.assert_allclose(logits.identity, per_view[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits.mean, np.mean(per_view, axis=0), rtol=1e-4, atol=1e-5)


def test_array_and_loader_paths_agree(runs):
    loaded = load_run(runs.cifar, device="cpu")
    cache = load_images(open_run_layout(loaded, runs.cifar_data), "test", 32)
    args = (loaded.model, cache, np.arange(len(cache)), loaded.recipe, loaded.mean, loaded.std, loaded.device)
    by_array = stream_logits(*args, batch_path="array", batch_size=16)
    by_loader = stream_logits(*args, batch_path="loader", batch_size=16)
    assert by_array.path == "array" and by_loader.path == "loader"
    np.testing.assert_allclose(by_array.mean, by_loader.mean, rtol=1e-4, atol=1e-5)


def test_dog_photos_array_path_agrees_with_the_loader_path(runs):
    """On a GPU, photos of any size are batched back to back (RaggedImages) and cropped by `GpuEval`; forced on
    the CPU here, the logits match the Albumentations evaluation pipeline's."""
    loaded = load_run(runs.dog, device="cpu")
    cache = load_images(open_run_layout(loaded, runs.dog_data), "test", 72)
    assert not cache.is_uniform()
    args = (loaded.model, cache, np.arange(len(cache)), loaded.recipe, loaded.mean, loaded.std, loaded.device)
    by_array = stream_logits(*args, batch_path="array", batch_size=8)
    by_loader = stream_logits(*args, batch_path="loader", batch_size=8)
    assert by_array.path == "array" and by_loader.path == "loader"
    # the cache holds every photo at the evaluation's shorter side: both paths centre-crop the very same pixels
    np.testing.assert_allclose(by_array.mean, by_loader.mean, rtol=1e-4, atol=1e-5)


def test_streaming_reads_one_batch_of_pixels_at_a_time(runs, monkeypatch):
    loaded = load_run(runs.cifar, device="cpu")
    cache = load_images(open_run_layout(loaded, runs.cifar_data), "test", 32)
    array = cache.uniform_array()
    requested = []

    class Watched:
        def __getitem__(self, key):
            rows = array[key]
            requested.append(len(rows))
            return rows

    monkeypatch.setattr(cache, "uniform_array", lambda: Watched())
    stream_logits(
        loaded.model,
        cache,
        np.arange(len(cache)),
        loaded.recipe,
        loaded.mean,
        loaded.std,
        loaded.device,
        batch_path="array",
        batch_size=16,
    )
    assert requested == [16, 16, 16, 12]


def test_predict_tta_flags_and_recorded_choice(runs, tmp_path, capsys):
    run = copy_run(runs.cifar, tmp_path)
    on = predict_run(run, runs.cifar_data, tta=True, out=tmp_path / "on.csv", device="cpu")
    off = predict_run(run, runs.cifar_data, tta=False, out=tmp_path / "off.csv", device="cpu")
    assert (on.tta, len(on.views), on.tta_source) == (True, 6, "--tta")
    assert (off.tta, off.views, off.tta_source) == (False, (IDENTITY,), "--no-tta")
    auto = predict_run(run, runs.cifar_data, out=tmp_path / "auto.csv", device="cpu")
    config = RunDir(run).config()
    assert auto.tta_source == "calibration" and auto.tta == config["calibration"]["best"]["tta"] == config["tta"]


# ------------------------------------------------------------------------------------ calibration


def make_over_confident(run: Path, factor: float = 40.0) -> None:
    """Scale the classifier of best.pt: same ranking of classes, far more confident probabilities."""
    run_dir = RunDir(run)
    state = run_dir.load_checkpoint("best")
    state["model"] = {k: v * factor if k.startswith("fc.") else v for k, v in state["model"].items()}
    run_dir.save_checkpoint("best", state)


def test_temperature_lowers_validation_log_loss_of_an_over_confident_run(runs, tmp_path):
    run = copy_run(runs.dog, tmp_path)
    make_over_confident(run)
    calibration = calibrate_run(run, runs.dog_data, device="cpu")
    assert calibration["validated"] and calibration["images"] == 120
    assert calibration["temperature"] > 2
    assert calibration["val_log_loss_after"] < calibration["val_log_loss_before"] - 0.5
    config = RunDir(run).config()
    assert config["calibration"] == {"best": calibration}
    assert config["temperature"] == calibration["temperature"] and config["tta"] == calibration["tta"]
    for key in ("val_metric_plain", "val_metric_tta", "val_log_loss_before", "val_log_loss_after"):
        assert np.isfinite(calibration[key])
    # the numbers are the competition's: recompute "before" from the run's own validation logits
    ids, labels, saved = RunDir(run).val_predictions()
    assert calibration["val_log_loss_plain"] == pytest.approx(log_loss(labels, softmax(saved * 40.0)), rel=1e-3)
    result = predict_run(run, runs.dog_data, out=tmp_path / "dog.csv", device="cpu")
    assert result.temperature == calibration["temperature"] and result.tta == calibration["tta"]


def test_predict_calibrates_lazily_and_again_when_stale(runs, tmp_path):
    run = copy_run(runs.dog, tmp_path)
    config = RunDir(run).config()
    assert "calibration" not in config  # the trainer API alone does not calibrate
    predict_run(run, runs.dog_data, out=tmp_path / "a.csv", device="cpu")
    first = RunDir(run).config()["calibration"]["best"]
    assert first["checkpoint"] == "best" and first["epoch"] == 0
    RunDir(run).update_config(calibration={"best": {**first, "epoch": 99, "temperature_plain": 123.0}})  # as if resumed
    result = predict_run(run, runs.dog_data, out=tmp_path / "b.csv", device="cpu")
    assert RunDir(run).config()["calibration"]["best"]["epoch"] == 0 and result.temperature != 123.0


def test_full_train_run_without_validation_predicts_uncalibrated(runs, tmp_path):
    run = copy_run(runs.dog, tmp_path)
    (run / "val_predictions.npz").unlink()
    result = predict_run(run, runs.dog_data, out=tmp_path / "dog.csv", device="cpu")
    assert (result.tta, result.temperature) == (False, 1.0)
    assert result.tta_source == "no validation split to measure it on"
    assert RunDir(run).config()["calibration"]["best"]["validated"] is False


def test_undecodable_test_image_is_reported_and_still_gets_a_row(runs, tmp_path):
    data = tmp_path / "dog-data"
    shutil.copytree(runs.dog_data, data)  # already unpacked by the training run; mtimes kept, so not again
    victim = sorted((data / "test").iterdir())[3]
    victim.write_bytes(b"not a jpeg")
    out = tmp_path / "dog.csv"
    result = predict_run(copy_run(runs.dog, tmp_path), data, tta=False, out=out, device="cpu")
    assert len(result.warnings) == 1 and victim.stem in result.warnings[0] and "grey placeholder" in result.warnings[0]
    assert result.rows == DOG_TEST and victim.stem in pd.read_csv(out, dtype={"id": str})["id"].tolist()


def submitted_configuration_on_validation(run: Path, data: Path, result) -> float:
    """The cross-fitted metric of exactly what `predict` submitted (its checkpoint, views, a temperature fitted
    on other parts of the validation split than each image's), recomputed from the model on the run's validation
    images; the submitted temperature is the one refitted on all of them, or 1 where that fit does not help."""
    loaded = load_run(run, result.checkpoint, device="cpu")
    layout = open_run_layout(loaded, data)
    cache = load_images(layout, "train", loaded.recipe.cache_side)
    indices, labels = calibration.validation_indices(loaded, layout, cache)
    logits = stream_logits(
        loaded.model, cache, indices, loaded.recipe, loaded.mean, loaded.std, loaded.device, result.views
    )
    crossed = cross_fit(TemperatureFit(), labels, logits.mean.astype(np.float64))
    assert result.temperature == pytest.approx(crossed.params)
    return loaded.competition.metric(labels, crossed.submitted)


@pytest.mark.parametrize("tta", ["on", "off", "auto"])
def test_every_reported_calibrated_figure_is_what_predict_submits(runs, tmp_path, capsys, tta):
    run = copy_run(runs.dog, tmp_path)
    make_over_confident(run)  # TTA and the temperature then change the log loss clearly
    config = RunDir(run).config()
    RunDir(run).update_config(recipe={**config["recipe"], "tta": tta})
    calibration = calibrate_run(run, runs.dog_data, device="cpu")  # what `train` stores and prints
    result = predict_run(run, runs.dog_data, out=tmp_path / "dog.csv", device="cpu")
    truth = submitted_configuration_on_validation(run, runs.dog_data, result)
    assert calibration["val_metric"] == pytest.approx(truth, abs=1e-4)
    assert result.val_metric == pytest.approx(truth, abs=1e-4)
    config = RunDir(run).config()
    stored = (config["tta"], config["temperature"])
    assert stored == (result.tta, result.temperature) == (calibration["tta"], calibration["temperature"])
    if tta != "auto":
        assert result.tta == (tta == "on") and calibration["tta_source"] == f"recipe tta={tta}"
    scored = cli(capsys, "score", run, "--device", "cpu").stdout.splitlines()
    uses = next(line for line in scored if line.startswith("predict uses:"))
    assert f"temperature {result.temperature:.3f}, validation, cross-fitted log loss {truth:.4f} [" in uses
    assert uses.endswith("n=120 - lower is better")
    if result.temperature > 3:  # the over-confident run: its temperature is out of the sane range, and said so
        assert any(line.startswith(f"note: temperature {result.temperature:.3f} fitted on 120") for line in scored)
    marked = [line for line in scored if "<- predict uses this" in line]
    assert len(marked) == 1 and f"log loss {truth:.4f} [" in marked[0] and ("no TTA" in marked[0]) == (not result.tta)


def test_predicting_last_then_best_keeps_both_calibrations(runs, tmp_path):
    run = copy_run(runs.dog, tmp_path)
    make_over_confident(run)  # best.pt now differs from last.pt
    last = predict_run(run, runs.dog_data, checkpoint="last", out=tmp_path / "last.csv", device="cpu")
    best = predict_run(run, runs.dog_data, checkpoint="best", out=tmp_path / "best.csv", device="cpu")
    stored = RunDir(run).config()
    assert set(stored["calibration"]) == {"best", "last"}
    assert stored["calibration"]["last"]["temperature_plain"] != stored["calibration"]["best"]["temperature_plain"]
    assert stored["temperature"] == best.temperature  # the top level is best.pt's, what a plain predict uses
    # a marked stored value shows the second predict of last.pt reads its own calibration, not best.pt's
    marked = {**stored["calibration"], "last": {**stored["calibration"]["last"], "temperature_plain": 0.777}}
    RunDir(run).update_config(calibration=marked)
    again = predict_run(run, runs.dog_data, checkpoint="last", tta=False, out=tmp_path / "again.csv", device="cpu")
    assert again.temperature == 0.777
    assert last.val_metric == pytest.approx(submitted_configuration_on_validation(run, runs.dog_data, last), abs=1e-4)


def test_a_run_folder_with_the_old_flat_calibration_still_predicts_and_scores(runs, tmp_path):
    run = copy_run(runs.dog, tmp_path)
    calibration = calibrate_run(run, runs.dog_data, device="cpu")
    old = {k: v for k, v in calibration.items() if k not in ("tta_source", "tta_measured_better")}
    old["temperature_plain"] = 0.777  # marked: reading it back shows the old block is used, not measured again
    RunDir(run).update_config(calibration=old)  # as written before calibration was stored per checkpoint
    result = predict_run(run, runs.dog_data, tta=False, out=tmp_path / "dog.csv", device="cpu")
    assert result.temperature == 0.777
    scores = score_run(run, runs.dog_data, device="cpu")
    assert scores["temperature_plain"] == 0.777 and scores["val_metric"] == calibration["val_metric"]
    assert any(line.startswith("predict uses: TTA") for line in scoring.describe_scores(scores))


# ------------------------------------------------------------------------------------ atomic writes


def test_interrupted_predict_leaves_no_partial_csv_and_keeps_the_old_file(runs, tmp_path, monkeypatch):
    run = copy_run(runs.cifar, tmp_path)
    out = tmp_path / "subs" / "cifar.csv"
    out.parent.mkdir()
    out.write_text("the previous good file\n")

    def torn_write(self, handle, **kwargs):
        handle.write(b"1,cat\n2,d")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", torn_write)
    with pytest.raises(KeyboardInterrupt):
        predict_run(run, runs.cifar_data, tta=False, out=out, device="cpu")
    assert out.read_text() == "the previous good file\n"
    assert [p.name for p in out.parent.iterdir()] == ["cifar.csv"]


def test_failed_validation_raises_and_replaces_nothing(runs, tmp_path, monkeypatch):
    run = copy_run(runs.cifar, tmp_path)
    out = tmp_path / "cifar.csv"
    out.write_text("the previous good file\n")
    real = sub.inspect_submission

    def strict(path, comp, sample_path):
        result = real(path, comp, sample_path)
        result.problems.append("an injected problem: fix it")
        return result

    monkeypatch.setattr(sub, "inspect_submission", strict)
    with pytest.raises(KitError, match="fail validation: an injected problem") as error:
        predict_run(run, runs.cifar_data, tta=False, out=out, device="cpu")
    assert "\n" not in str(error.value)
    assert out.read_text() == "the previous good file\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv") == ["cifar.csv", "cifar.invalid.csv"]


# ------------------------------------------------------------------------------------ score and the CLI


def test_score_run_reports_metric_and_direction_before_and_after(runs, tmp_path, capsys):
    run = copy_run(runs.dog, tmp_path)
    scores = score_run(run, runs.dog_data, device="cpu")
    assert scores["competition"] == "dog_breed" and scores["validated"]
    result = cli(capsys, "score", run, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"run {run} (best.pt, epoch 1): 120 validation images (95% bootstrap intervals)"
    raw = Interval.from_dict(scores["val_interval_plain"])
    assert raw.low < scores["val_metric_plain"] < raw.high
    assert lines[1].startswith("  no TTA:") and lines[1].endswith(f"log loss {raw} - lower is better")
    assert "TTA (2 views):" in lines[2] and "calibrated, cross-fitted (T=" in lines[3]
    before, after = scores["val_log_loss_before"], scores["val_log_loss_after"]
    assert f"before calibration {before:.4f}, after {after:.4f}" in lines[5]
    assert lines[6].startswith("predict uses: TTA ")
    cifar = cli(capsys, "score", copy_run(runs.cifar, tmp_path / "c"), "--device", "cpu")
    assert cifar.returncode == 0 and "accuracy" in cifar.stdout and "higher is better" in cifar.stdout


def test_cli_predict_prints_path_rows_and_validation(runs, tmp_path, capsys, monkeypatch):
    run = copy_run(runs.dog, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = cli(capsys, "predict", run, "--data-dir", runs.dog_data, "--no-tta", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    path = Path("submissions") / "dog_breed" / f"{run.name}.csv"
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"wrote {path}: {DOG_TEST} rows (TTA off [--no-tta], temperature ")
    assert lines[1] == f"ok: {path}: {DOG_TEST} rows, header matches {runs.dog_data / DOG.sample_file}"
    assert (tmp_path / path).is_file()


def test_cli_predict_bad_inputs_are_one_line_errors(runs, tmp_path, capsys):
    no_config = tmp_path / "empty-run"
    no_config.mkdir()
    assert_one_line_error(cli(capsys, "predict", no_config), "no config.json")
    assert_one_line_error(cli(capsys, "predict", tmp_path / "missing"), "does not exist")
    no_checkpoint = copy_run(runs.cifar, tmp_path / "a")
    (no_checkpoint / "best.pt").unlink()
    result = cli(capsys, "predict", no_checkpoint, "--device", "cpu")
    assert result.returncode == 2
    assert_one_line_error(result, "no best.pt checkpoint")
    assert_one_line_error(
        cli(capsys, "predict", no_checkpoint, "--checkpoint", "middle"), "unknown checkpoint 'middle'"
    )
    other = cli(capsys, "predict", copy_run(runs.cifar, tmp_path / "b"), "--data-dir", runs.dog_data, "--device", "cpu")
    assert_one_line_error(other, "holds dog-breed-identification data", "cifar10 run", "--data-dir")
    broken = copy_run(runs.cifar, tmp_path / "c")
    config = json.loads((broken / "config.json").read_text())
    del config["classes"]
    (broken / "config.json").write_text(json.dumps(config))
    assert_one_line_error(cli(capsys, "predict", broken), "field 'classes' is missing")


def test_train_command_calibrates_then_predict_command_writes(runs, tmp_path):
    """The real entry points, as a user runs them: train records the calibration, predict applies it."""
    run = tmp_path / "run"
    trained = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        runs.cifar_data,
        "--out",
        run,
        "--epochs",
        "1",
        "--arch",
        "test_resnet",
        "--batch-size",
        "64",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--tta",
        "off",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert trained.returncode == 0, trained.stderr
    calibration = RunDir(run).config()["calibration"]["best"]
    assert calibration["validated"] and calibration["checkpoint"] == "best"
    interval = Interval.from_dict(calibration["val_interval_plain_calibrated"])
    assert interval.value == calibration["val_metric_plain_calibrated"] and interval.n == calibration["images"]
    figure = f"{CIFAR.metric.label} {interval} - higher is better"
    assert (
        f"calibrated (what predict uses): best.pt, TTA off (recipe tta=off), temperature "
        f"{calibration['temperature_plain']:.3f}, validation (cross-fitted) {figure}"
    ) in trained.stdout
    predicted = run_cli("predict", run, "--out", tmp_path / "c.csv", env={"OMP_NUM_THREADS": "1"})
    assert predicted.returncode == 0, predicted.stderr
    assert f"{CIFAR_TEST} rows (TTA off [recipe tta=off]" in predicted.stdout
    assert f"validation (cross-fitted) {figure} <- this configuration" in predicted.stdout


def test_a_qwk_competition_submits_grades_cut_at_thresholds_fitted_on_validation(runs, tmp_path, monkeypatch):
    # CIFAR-10 declared again in ./competitions with QWK: the local declaration wins, the run's metric follows it
    (tmp_path / "competitions").mkdir()
    (tmp_path / "competitions" / "cifar10.toml").write_text(dump(dataclasses.replace(CIFAR, metric=QWK)))
    monkeypatch.chdir(tmp_path)
    run = copy_run(runs.cifar, tmp_path)
    calibration = calibrate_run(run, runs.cifar_data, device="cpu")
    assert calibration["metric"] == "qwk" and calibration["temperature_plain"] > 0  # calibrated before thresholds
    thresholds = calibration["thresholds_plain"]
    assert thresholds is not None and thresholds == sorted(thresholds) and len(thresholds) == 9
    assert calibration["val_metric_plain_calibrated"] > calibration["val_metric_plain"]  # beat the argmax
    out = tmp_path / "qwk.csv"
    result = predict_run(run, runs.cifar_data, tta=False, out=out, device="cpu")
    assert result.val_metric == calibration["val_metric_plain_calibrated"]
    loaded = load_run(run, "best", device="cpu")
    cache = load_images(open_run_layout(loaded, runs.cifar_data), "test", loaded.recipe.cache_side)
    logits = stream_logits(
        loaded.model, cache, np.arange(len(cache)), loaded.recipe, loaded.mean, loaded.std, loaded.device, (IDENTITY,)
    )
    probs = softmax(logits.mean.astype(np.float64), calibration["temperature_plain"])
    grades = one_hot_grades(probs, thresholds).argmax(axis=1)
    expected = dict(zip(cache.ids, np.array(loaded.classes)[grades]))
    written = pd.read_csv(out, dtype=str)
    assert written["label"].tolist() == [expected[i] for i in written["id"]]


def test_a_perfectly_separated_validation_split_keeps_temperature_one(cifar_run, sample_zips, tmp_path):
    """A validation split of six images the run gets right: the fit would run into its 0.05 floor (near one-hot
    test probabilities); `score --recalibrate` keeps 1.0, stores it, and says so in one note line."""
    run = copy_run(cifar_run[0], tmp_path)
    ids, labels, logits = RunDir(run).val_predictions()
    margin = np.sort(logits, axis=1)[:, -1] - np.sort(logits, axis=1)[:, -2]
    right = np.flatnonzero((logits.argmax(1) == labels) & (margin > 0.5))[:6]  # best epoch's logits: best.pt's
    assert len(right) == 6
    RunDir(run).save_val_predictions([ids[i] for i in right], labels[right], logits[right])
    result = cli(None, "score", run, "--recalibrate", "--device", "cpu", "--data-dir", sample_zips["cifar10"])
    assert result.returncode == 0, result.stderr
    note = "note: validation split perfectly separated (6 images): temperature left at 1.0"
    assert note in result.stdout.splitlines()
    stored = RunDir(run).read_config()
    assert stored.temperature == 1.0 and stored.calibration_of("best")["temperature_note"] == note[len("note: ") :]
    submitted = predict_run(run, sample_zips["cifar10"], out=tmp_path / "sub.csv", device="cpu")
    assert submitted.temperature == 1.0
