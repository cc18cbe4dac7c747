"""`ensemble`: weights recover a known mixture, a search never does worse than its start, members of other
competitions, data or splits are refused in one line, and the blend is a validated file `submit` can describe."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import FOLD_ARGS, assert_one_line_error, run_cli
from sklearn.metrics import accuracy_score
from sklearn.metrics import log_loss as sk_log_loss

from kaggle_kit.competitions.metrics import ACCURACY, LOG_LOSS
from kaggle_kit.core.errors import KitError
from kaggle_kit.records.group_folder import FoldGroup
from kaggle_kit.submissions.provenance import describe_run
from kaggle_kit.workflows.ensemble_predict import predict_ensemble
from kaggle_kit.workflows.ensembles import Shared, blend, choose_weights, fit_weights


def _members(rng, n, classes, count, concentration=0.5):
    return [rng.dirichlet(np.full(classes, concentration), size=n) for _ in range(count)]


def test_log_loss_weights_recover_a_known_mixture():
    rng = np.random.default_rng(0)
    members = _members(rng, 20000, 5, 3)
    truth = np.array([0.6, 0.3, 0.1])
    mixed = blend(members, truth)
    labels = np.array([rng.choice(5, p=row) for row in mixed])  # drawn from the mixture itself
    weights = fit_weights(labels, members)
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    np.testing.assert_allclose(weights, truth, atol=0.03)
    fitted = sk_log_loss(labels, blend(members, weights), labels=range(5))
    for other in [np.full(3, 1 / 3), truth, *np.eye(3)]:  # no simpler choice does better (the fit is the optimum)
        assert fitted <= sk_log_loss(labels, blend(members, other), labels=range(5)) + 1e-9


def test_a_useless_member_gets_no_weight():
    rng = np.random.default_rng(1)
    good, noise = _members(rng, 5000, 4, 2)
    labels = np.array([rng.choice(4, p=row) for row in good])
    weights = fit_weights(labels, [good, noise])
    assert weights[1] == 0 and weights[0] == pytest.approx(1.0)  # under MIN_WEIGHT: dropped


def test_log_loss_weights_that_lose_accuracy_to_equal_weights_are_not_used():
    rng = np.random.default_rng(2)
    n, classes = 3000, 6
    labels = rng.integers(0, classes, n)
    members = []
    for strength in (1.5, 1.0, 0.5):  # three noisy views of the truth, of different quality
        logits = rng.normal(size=(n, classes))
        logits[np.arange(n), labels] += strength
        members.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    weights = fit_weights(labels, members)
    assert weights.sum() == pytest.approx(1.0) and weights[0] > weights[1] > weights[2]
    fitted = accuracy_score(labels, blend(members, weights).argmax(1))
    equal = accuracy_score(labels, blend(members, np.full(3, 1 / 3)).argmax(1))
    assert fitted < equal  # the smooth score's optimum is not the step function's
    chosen, crossed = choose_weights("auto", ACCURACY, Shared([str(i) for i in range(n)], labels, members))
    assert not crossed.used and chosen.tolist() == pytest.approx([1 / 3] * 3)
    assert f"the default's (equal weights) {equal:.4f}" in crossed.note
    assert crossed.interval.value == pytest.approx(equal)


def test_auto_weights_are_cross_fitted_and_a_useless_member_is_dropped():
    rng = np.random.default_rng(3)
    n, classes = 600, 4
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += 2.0
    good, noise = np.exp(logits) / np.exp(logits).sum(1, keepdims=True), rng.dirichlet(np.ones(classes), n)
    shared = Shared([str(i) for i in range(n)], labels, [good, noise])
    weights, crossed = choose_weights("auto", LOG_LOSS, shared)
    assert crossed.used and weights.tolist() == [1.0, 0.0]  # refitted on all rows, the noise under 0.05
    assert crossed.interval.value == pytest.approx(crossed.fitted_score) and crossed.interval.n == n
    assert crossed.fitted_score < crossed.default_score  # cross-fitted, it still beats equal weights
    # two members of equal skill: weights fitted on some parts do not beat equal ones on the others
    twin = np.roll(good, 1, axis=0)[np.argsort(np.roll(np.arange(n), 1))]  # the same rows, another copy
    equal, kept = choose_weights("auto", ACCURACY, Shared(shared.ids, labels, [good, twin]))
    assert not kept.used and equal.tolist() == [0.5, 0.5] and "ensemble weights not used" in kept.note
    given, figure = choose_weights(np.array([0.75, 0.25]), ACCURACY, shared)  # given weights: scored as they are
    assert figure.value == pytest.approx(ACCURACY(labels, 0.75 * good + 0.25 * noise)) and given.tolist() == [
        0.75,
        0.25,
    ]


@pytest.fixture(scope="module")
def runs(tiny_cifar, tmp_path_factory):
    """Two single runs on the group's data: one with the group's seed, one validated on another split."""
    root = tmp_path_factory.mktemp("ensemble-runs")
    made = {}
    for name, seed in (("seed3", "3"), ("seed4", "4")):
        args = [*FOLD_ARGS[:-6], "--seed", seed, *FOLD_ARGS[-4:]]
        result = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--out", root / name, "--no-analyze", *args)
        assert result.returncode == 0, result.stderr
        made[name] = root / name
    return made


def test_blend_of_a_group_and_a_run_is_a_validated_recorded_submission(cifar_group, runs, tiny_cifar, tmp_path):
    group_dir, _ = cifar_group
    out = tmp_path / "blend.csv"
    shell = {"KAGGLE_KIT_PROGRESS": None}  # as a user's shell has it: progress on
    result = run_cli("ensemble", group_dir, runs["seed3"], "--out", out, "--weights", "auto", env=shell)
    assert result.returncode == 0 and " eta " in result.stderr, result.stderr
    assert "accuracy" in result.stdout and "higher is better" in result.stdout and "blend" in result.stdout
    blend_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("blend"))
    assert "n=10" in blend_line  # every figure with its interval and the images it stands on
    # outside submissions/<competition>/: validate and score find the competition in the blend's record
    checked = run_cli("validate", out, "--data-dir", tiny_cifar)
    assert checked.returncode == 0, checked.stderr
    recorded = run_cli("validate", out)  # without --data-dir: the sample the blend was written against
    assert recorded.returncode == 0 and "header matches" in recorded.stdout, recorded.stderr
    assert len(pd.read_csv(out)) == 30
    record = json.loads((tmp_path / "blend.csv.ensemble.json").read_text())
    weights = [m["weight"] for m in record["members"]]
    assert sum(weights) == pytest.approx(1.0) and min(weights) >= 0
    assert record["shared_images"] == 10  # the run's validation split, which the group's OOF covers
    # the group's member score is its OOF accuracy on those ten ids, recomputed here from oof_predictions.npz
    oof = FoldGroup(group_dir).oof()
    split = json.loads((runs["seed3"] / "split.json").read_text())["val_ids"]
    rows = [oof.ids.index(i) for i in split]
    assert record["members"][0]["score"] == pytest.approx(accuracy_score(oof.labels[rows], oof.probs[rows].argmax(1)))
    comp, info = describe_run(out)  # what `submit` writes into the ledger
    assert comp.name == "cifar10" and info.local_score == record["blend_score"]
    assert group_dir.name in info.recipe and runs["seed3"].name in info.recipe and f"{weights[0]:.3f}" in info.recipe
    given = run_cli(
        "ensemble", group_dir, runs["seed3"], "--out", tmp_path / "given.csv", "--weights", "3,1", "--quiet", env=shell
    )
    assert given.returncode == 0 and " eta " not in given.stderr, given.stderr
    given_record = json.loads((tmp_path / "given.csv.ensemble.json").read_text())
    assert [m["weight"] for m in given_record["members"]] == pytest.approx([0.75, 0.25])


def test_members_that_cannot_be_blended_are_one_line_errors(cifar_group, runs, tmp_path):
    group_dir, _ = cifar_group
    out = tmp_path / "x.csv"
    other_split = run_cli("ensemble", runs["seed3"], runs["seed4"], "--out", out)
    assert_one_line_error(other_split, "do not cover id", "same --seed")
    for field, value, needle in (("competition", "dog_breed", "blend members of one competition"),
                                 ("fingerprint", "0000", "trained on other data")):  # fmt: skip
        copy = shutil.copytree(runs["seed3"], tmp_path / field)
        config = json.loads((copy / "config.json").read_text())
        config[field] = value
        (copy / "config.json").write_text(json.dumps(config))
        assert_one_line_error(run_cli("ensemble", group_dir, copy, "--out", out), needle)
    assert_one_line_error(run_cli("ensemble", group_dir, "--out", out), "at least two members")
    count = run_cli("ensemble", group_dir, runs["seed3"], "--out", out, "--weights", "1,2,3")
    assert_one_line_error(count, "--weights 1,2,3", "one per member")
    assert_one_line_error(run_cli("ensemble", group_dir, tmp_path, "--out", out), "neither a run folder")
    own_fold = run_cli("ensemble", group_dir, group_dir / "fold-1", "--out", out)
    assert_one_line_error(own_fold, "fold-1 is a fold of the member", "give the group or its fold, not both")
    two_folds = run_cli("ensemble", group_dir / "fold-1", group_dir / "fold-2", "--out", out)
    assert_one_line_error(two_folds, f"folds of the group {group_dir.resolve()}", "give the group itself")
    assert not out.exists()


def test_predict_of_an_ensemble_writes_the_file_ensemble_wrote_and_refuses_moved_members(cifar_group, runs, tmp_path):
    group_dir, _ = cifar_group
    out = tmp_path / "blend.csv"
    result = run_cli("ensemble", group_dir, runs["seed3"], "--out", out, "--weights", "3,1", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    again = run_cli("predict", out, "--out", tmp_path / "again.csv", "--device", "cpu")  # rebuilt, not reweighed
    assert again.returncode == 0 and "from 2 members" in again.stdout, again.stderr
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()
    assert_one_line_error(run_cli("predict", out, "--tta"), "is an ensemble", "drop --checkpoint, --tta")
    record = json.loads((tmp_path / "blend.csv.ensemble.json").read_text())
    record["members"][1]["path"] = str(tmp_path / "moved")
    (tmp_path / "moved.csv.ensemble.json").write_text(json.dumps(record))
    with pytest.raises(KitError, match="is not found at .*moved.*kaggle-kit ensemble"):
        predict_ensemble(tmp_path / "moved.csv.ensemble.json", tmp_path / "x.csv", device="cpu")
    assert not (tmp_path / "x.csv").exists()
    # a member of weight 0 is not needed: predicted without it, as its weight says
    record["members"][0]["weight"], record["members"][1]["weight"] = 1.0, 0.0
    (tmp_path / "moved.csv.ensemble.json").write_text(json.dumps(record))
    alone = predict_ensemble(tmp_path / "moved.csv.ensemble.json", tmp_path / "alone.csv", device="cpu")
    record["members"][1]["path"] = str(runs["seed3"])
    (tmp_path / "kept.csv.ensemble.json").write_text(json.dumps(record))
    predict_ensemble(tmp_path / "kept.csv.ensemble.json", tmp_path / "kept.csv", device="cpu")
    assert alone.members == 1 and (tmp_path / "alone.csv").read_bytes() == (tmp_path / "kept.csv").read_bytes()


def test_package_an_ensemble_rehearses_and_matches_the_blend_and_refuses_unfinished(cifar_group, runs, tmp_path):
    group = shutil.copytree(cifar_group[0], tmp_path / "group")  # packaging may calibrate: copies, not fixtures
    run = shutil.copytree(runs["seed3"], tmp_path / "seed3")
    blended = tmp_path / "blend.csv"
    made = run_cli("ensemble", group, run, "--out", blended, "--weights", "3,1", "--device", "cpu")
    assert made.returncode == 0, made.stderr
    package = ["package", blended, "--owner", "someone", "--no-deps-wheels", "--out", tmp_path / "pkg"]
    packaged = run_cli(*package, "--rehearse", env={"PIP_NO_INDEX": "1"})
    assert packaged.returncode == 0, packaged.stderr
    assert "packaged ensemble blend of cifar-10" in packaged.stdout and "rehearsal passed" in packaged.stdout
    names = {p.name for p in (tmp_path / "pkg" / "dataset").iterdir()}
    assert {"ensemble.json", "member-1.folds.json", "member-1.cv.json", "member-1.oof_predictions.npz"} <= names
    assert {f"member-1.fold-{i}.weights.safetensors" for i in (1, 2, 3)} | {"member-2.weights.safetensors"} <= names
    assert all(f"fold-{i} " in packaged.stdout for i in (1, 2, 3))  # the estimate counts the group's every fold
    notebook = tmp_path / "pkg" / "rehearsal" / "working" / "submission.csv"
    assert notebook.read_bytes() == blended.read_bytes()  # the notebook writes what `ensemble` wrote
    assert_one_line_error(run_cli(*package, "--engine", "onnx"), "is an ensemble", "torch only")
    (run / "best.pt").unlink()
    assert_one_line_error(run_cli(*package), "seed3/best.pt not found", "ensemble member")
    shutil.rmtree(run)
    assert_one_line_error(run_cli(*package), "is not found at", "moved or deleted")
