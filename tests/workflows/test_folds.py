"""`train --folds K`: the split partitions the training set by class (or group), each fold is a run folder holding
out its fold, the OOF rows belong to the right ids, predict/score/runs read the group, and a group killed mid-fold
resumes to the same result as one never stopped."""

import json
import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import torch
from fault_sweep import zygote
from helpers import FOLD_ARGS, REPO, assert_one_line_error, run_cli
from sklearn.metrics import accuracy_score
from sklearn.metrics import log_loss as sk_log_loss

from kaggle_kit.competitions.bootstrap import Interval
from kaggle_kit.competitions.metrics import softmax
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.core.errors import KitError
from kaggle_kit.data.layout import open_layout
from kaggle_kit.data.split import check_fold_count, stratified_folds, stratified_split
from kaggle_kit.kaggle.api.submit import default_message
from kaggle_kit.records.group_folder import FoldGroup
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.submissions.provenance import describe_run


def test_folds_partition_each_class_evenly():
    labels = np.repeat(np.arange(4), [7, 12, 5, 30])  # uneven classes, as real training sets are
    folds = stratified_folds(labels, 5, seed=1)
    assert set(folds) == set(range(5))  # each image in exactly one fold: one fold number per image
    for cls in range(4):
        counts = np.bincount(folds[labels == cls], minlength=5)
        assert counts.max() - counts.min() <= 1, (cls, counts)  # every fold holds ~1/5 of every class
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=1))  # seeded
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=2))
    # a run's validation split with the same seed spreads over the folds instead of filling one
    _, val = stratified_split(labels, 0.2, seed=1)
    assert len(set(folds[val])) > 1


def test_grouped_folds_keep_each_group_whole():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(1, 6, size=40))
    labels = groups % 3  # a group's images share a class here, as one patient's scans share a diagnosis
    folds = stratified_folds(labels, 4, seed=0, groups=groups.astype(str))
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    for cls in range(3):
        counts = np.bincount(folds[labels == cls], minlength=4)
        assert counts.min() > 0 and counts.max() <= 2 * counts.min() + 5, counts


def test_group_folder_holds_every_training_image_out_once(cifar_group, tiny_cifar):
    group_dir, result = cifar_group
    plan = json.loads((group_dir / "folds.json").read_text())
    layout = open_layout(resolve("cifar10"), tiny_cifar)
    assert plan["ids"] == layout.train.ids and plan["folds"] == 3 and plan["seed"] == 3
    held_out = []
    for fold in (1, 2, 3):
        split = json.loads((group_dir / f"fold-{fold}" / "split.json").read_text())
        assert split["val_ids"] == [i for i, f in zip(plan["ids"], plan["fold"]) if f == fold]
        held_out += split["val_ids"]
        assert RunDir(group_dir / f"fold-{fold}").read_config().recipe.epochs == 2
        per_class = np.bincount(layout.train_labels[np.isin(layout.train.ids, split["val_ids"])], minlength=10)
        assert (per_class == 3).all()  # 9 images of each class: 3 held out by each fold
    assert sorted(held_out) == sorted(layout.train.ids)
    assert "OOF accuracy" in result.stdout and "higher is better" in result.stdout


def test_oof_rows_belong_to_their_ids(cifar_group, tiny_cifar):
    group_dir, result = cifar_group
    group = FoldGroup(group_dir)
    oof = group.oof()
    layout = open_layout(resolve("cifar10"), tiny_cifar)
    assert oof.ids == layout.train.ids
    np.testing.assert_array_equal(oof.labels, layout.train_labels)
    for fold in (1, 2, 3):
        # the fold's own validation logits (saved by training, best epoch) are the OOF rows of its ids, in place
        ids, labels, logits = RunDir(group.fold_dir(fold)).val_predictions()
        rows = [oof.ids.index(i) for i in ids]
        assert (oof.fold[rows] == fold).all()
        np.testing.assert_allclose(oof.logits[rows], logits, atol=1e-4)
    np.testing.assert_allclose(oof.probs, softmax(oof.logits, oof.temperature), atol=1e-6)
    cv = group.cv()
    assert cv["oof_metric"] == pytest.approx(accuracy_score(oof.labels, oof.probs.argmax(1)))
    # the printed OOF log loss is cross-fitted (each fold's temperature fitted on the other folds), so it is checked
    # where it is independent of that fit: before any temperature
    uncalibrated = sk_log_loss(oof.labels, softmax(oof.logits, 1.0), labels=range(10))
    assert cv["cross_fitted"] and cv["oof_log_loss_uncalibrated"] == pytest.approx(uncalibrated, abs=1e-5)
    folds = [row["metric"] for row in cv["per_fold"]]
    assert cv["fold_mean"] == pytest.approx(np.mean(folds)) and cv["fold_std"] == pytest.approx(np.std(folds, ddof=1))
    assert "| 3 | 30 |" in (group_dir / "cv.md").read_text()
    for row in cv["per_fold"]:  # each fold's figure with its own interval and n, printed as stored
        interval = Interval.from_dict(row["interval"])
        assert interval.n == row["images"] == 30 and interval.value == row["metric"]
        assert interval.low <= row["metric"] <= interval.high and interval.low < interval.high
        assert f"fold {row['fold']}: accuracy {interval} - higher is better" in result.stdout, result.stdout
        assert (
            f"| {row['fold']} | 30 | {row['metric']:.4f} | [{interval.low:.3f}, {interval.high:.3f}] |"
            in (group_dir / "cv.md").read_text()
        )


def test_predict_score_and_runs_read_the_group(cifar_group, tiny_cifar, tmp_path):
    group_dir, _ = cifar_group
    out = tmp_path / "group.csv"
    predicted = run_cli("predict", group_dir, "--out", out)
    assert predicted.returncode == 0, predicted.stderr
    assert "temperature" in predicted.stdout and "OOF accuracy" in predicted.stdout
    checked = run_cli("validate", out, "--competition", "cifar10", "--data-dir", tiny_cifar)
    assert checked.returncode == 0, checked.stderr
    assert len(pd.read_csv(out)) == 30
    scored = run_cli("score", group_dir)
    assert scored.returncode == 0 and "OOF accuracy" in scored.stdout and "higher is better" in scored.stdout
    cv = FoldGroup(group_dir).cv()
    assert f"{cv['oof_metric']:.4f}" in scored.stdout
    # run-only flags would change nothing in a group's stored OOF score: refused, not silently ignored
    for flags, named in ((["--checkpoint", "last"], "--checkpoint"), (["--metric", "logloss"], "--metric")):
        assert_one_line_error(run_cli("score", group_dir, *flags), "is a fold group", f"drop {named}")
    listed = run_cli("runs", "--root", group_dir.parent)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if str(group_dir) in line]
    assert len(rows) == 1 and "3-fold CV" in rows[0] and f"{cv['oof_metric']:.4f}" in rows[0]
    interval = Interval.from_dict(cv["oof_interval"])  # every image held out once: n is the whole training set
    assert interval.n == cv["images"] and interval.low <= cv["oof_metric"] <= interval.high and cv["cross_fitted"]
    assert str(interval) in rows[0] and str(interval) in scored.stdout
    assert "(else best epoch's accuracy); a fold group's: OOF accuracy, kaggle" in listed.stdout
    comp, info = describe_run(out)  # what `submit` records in the ledger
    assert comp.name == "cifar10" and info.name == group_dir.name and info.local_score == cv["oof_metric"]
    assert info.local_interval == cv["oof_interval"]  # the ledger records the figure with its interval
    # the submission's message gives the temperature predict GROUP applied (OOF), not fold 1's
    message = default_message(out, info, "0" * 64)
    assert f"T={cv['temperature']:.2f}" in message and info.config.tta is None


def test_runs_shows_a_groups_epochs_per_fold_not_summed(cifar_group, tmp_path):
    """`runs` reads a group's epochs as a single run's: per fold, of the epochs each fold plans (3 folds of 2)."""
    group_dir, _ = cifar_group
    partial = shutil.copytree(group_dir, tmp_path / "runs" / "partial")
    history = partial / "fold-2" / "history.csv"
    history.write_text("".join(history.read_text().splitlines(keepends=True)[:2]))  # fold 2: 1 epoch of 2
    shutil.rmtree(partial / "fold-3")  # fold 3 never started
    for root, expected in ((group_dir.parent, "3x2/2"), (partial.parent, "2,1,0/2")):
        listed = run_cli("runs", "--root", root)
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if "3-fold CV" in line)
        assert expected in row.split(), row
        assert "6/6" not in row.split()


def test_rerun_skips_finished_folds_and_fold_picks_some(cifar_group, tiny_cifar, tmp_path):
    group_dir, _ = cifar_group
    again = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--out", group_dir, *FOLD_ARGS)
    assert again.returncode == 0, again.stderr
    assert "folds 1, 2, 3 had finished already" in again.stdout and "fold 1/3" not in again.stderr
    out = tmp_path / "partial"
    some = run_cli(
        "train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--fold", "2", "--out", out, *FOLD_ARGS
    )
    assert some.returncode == 0, some.stderr
    assert (out / "fold-2" / "best.pt").is_file() and not (out / "fold-1").exists() and not (out / "cv.json").exists()
    assert "every fold has finished" in some.stdout
    # fold 2 alone matches the shared group's fold 2: the split and the fold's training depend on the seed only
    ours, theirs = RunDir(out / "fold-2").history(), RunDir(group_dir / "fold-2").history()
    assert ours["val_metric"].tolist() == theirs["val_metric"].tolist()


def _wait_for(path, child, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and len(path.read_text().strip().splitlines()) > 1:
            return
        assert child.running(), child.said(child.stderr)
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in time")


def test_group_killed_mid_fold_resumes_to_the_same_result(cifar_group, tiny_cifar, tmp_path):
    group_dir, _ = cifar_group
    out = tmp_path / "killed"
    args = ["train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--out", out, *FOLD_ARGS]
    with zygote().launch(tmp_path, {**os.environ, "PYTHONPATH": str(REPO)}, args) as child:  # a process of its own
        _wait_for(out / "fold-2" / "history.csv", child)  # fold 2 has finished its first of two epochs
        child.kill()
        child.wait()
    assert not (out / "cv.json").exists()
    resumed = run_cli("train", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr
    assert "folds 1 had finished already" in resumed.stdout
    for fold in (2, 3):
        a, b = RunDir(out / f"fold-{fold}"), RunDir(group_dir / f"fold-{fold}")
        assert a.history()["val_metric"].tolist() == b.history()["val_metric"].tolist()
        weights_a, weights_b = a.load_checkpoint("last")["model"], b.load_checkpoint("last")["model"]
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert json.loads((out / "cv.json").read_text())["oof_metric"] == FoldGroup(group_dir).cv()["oof_metric"]


def test_bad_fold_requests_are_one_line_errors(cifar_group, tiny_cifar, tmp_path):
    group_dir, _ = cifar_group
    too_many = run_cli(
        "train", "cifar10", "--data-dir", tiny_cifar, "--folds", "10", "--out", tmp_path / "g", *FOLD_ARGS
    )
    assert_one_line_error(too_many, "--folds 10", "only 9 training images", "--folds 9 or fewer")
    assert not (tmp_path / "g").exists()
    # a class (or group) of one image (small Dog samples): the fix named is not the refused --folds 1
    for groups in (None, np.array(["a", "a", "a"])):
        with pytest.raises(KitError, match="drop --folds") as refused:
            check_fold_count(np.array([0, 0, 1]), 2, ["chow", "pug"], groups)
        assert "--folds 1" not in str(refused.value)
    full = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--full-train", *FOLD_ARGS)
    assert_one_line_error(full, "--full-train")
    fraction = run_cli(
        "train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--val-fraction", "0.2", *FOLD_ARGS
    )
    assert_one_line_error(fraction, "--val-fraction cannot apply", "drop one of them")
    # a fold the new group does not have: refused before folds.json would pin --folds 3 on the folder
    fresh = tmp_path / "fresh"
    bad_new = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--fold", "4", "--out", fresh)
    assert_one_line_error(bad_new, "--fold 4", "1 to 3")
    assert not fresh.exists()
    # commands that take one run name a fold of the group instead
    assert_one_line_error(run_cli("analyze", group_dir), "is a fold group, not one run", str(group_dir / "fold-1"))
    changed_on_resume = run_cli("train", "--resume", group_dir, "--epochs", "3", "--lr", "0.1")
    assert_one_line_error(changed_on_resume, "so --epochs, --lr would be ignored", "drop them")
    bad_fold = run_cli("train", "--resume", group_dir, "--fold", "4")
    assert_one_line_error(bad_fold, "--fold 4", "1 to 3")
    changed = [*FOLD_ARGS[:1], "3", *FOLD_ARGS[2:]]  # --epochs 3 where the group was made with 2
    other = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--out", group_dir, *changed)
    assert_one_line_error(other, "--epochs 2, not 3", f"--resume {group_dir}")
    more = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "4", "--out", group_dir, *FOLD_ARGS)
    assert_one_line_error(more, "was made with --folds 3, not 4", f"--resume {group_dir}")
    copy = shutil.copytree(group_dir, tmp_path / "copy", ignore=shutil.ignore_patterns("*.pt"))
    (copy / "cv.json").unlink()
    assert_one_line_error(run_cli("score", copy), "no cv.json", "--resume")


def test_gpus_train_folds_side_by_side_to_the_same_result(cifar_group, tiny_cifar, tmp_path):
    group_dir, _ = cifar_group
    out = tmp_path / "side-by-side"
    # GPU ids are only CUDA_VISIBLE_DEVICES to each fold's process: on --device cpu any two ids run two at a time
    result = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--fold", "1,3", "--gpus", "0,1",
                     "--out", out, *FOLD_ARGS)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ("no CUDA GPU is visible here" in result.stderr) != torch.cuda.is_available()
    assert [p.name for p in sorted((out / "logs").iterdir())] == ["fold-1.log", "fold-3.log"]
    assert not (out / "fold-2").exists() and not (out / "cv.json").exists()
    for fold in (1, 3):
        a, b = RunDir(out / f"fold-{fold}"), RunDir(group_dir / f"fold-{fold}")
        weights_a, weights_b = a.load_checkpoint("last")["model"], b.load_checkpoint("last")["model"]
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_the_single_run_split_holds_out_whole_groups():
    """By construction: for any seed and fraction, no validation image shares its group with a training image."""
    rng = np.random.default_rng(3)
    groups = np.repeat([f"p{n:03d}" for n in range(30)], rng.integers(2, 9, size=30))
    labels = rng.integers(0, 4, size=len(groups))  # one driver, every class (State Farm: each driver does all ten)
    for seed in range(5):
        for fraction in (0.1, 0.2, 0.5):
            train, val = stratified_split(labels, fraction, seed, groups)
            assert not set(groups[train]) & set(groups[val])
            assert len(train) + len(val) == len(labels) and abs(len(val) / len(labels) - fraction) < 0.15
            assert set(labels[val]) == set(labels)  # every class still validated
    assert np.array_equal(stratified_split(labels, 0.2, 1, groups)[1], stratified_split(labels, 0.2, 1, groups)[1])
    with pytest.raises(KitError, match="needs at least 2"):
        stratified_split(labels, 0.2, 0, np.full(len(labels), "one"))


def test_a_group_whose_first_write_was_killed_is_planned_again_in_its_folder(tiny_cifar, tmp_path):
    """A kill while folds.json was first written leaves the group folder holding only the write's hidden
    temporary file: the same command plans the group there (a folder holding any other file is still refused)."""
    from kaggle_kit.workflows.cross_validation import plan_group

    out = tmp_path / "group"
    out.mkdir()
    (out / ".folds.json.x1y2z3.partial").write_text('{"competition": "cif')
    group, _ = plan_group("cifar10", tiny_cifar, None, out, 3, arch="test_resnet")
    assert json.loads((out / "folds.json").read_text())["folds"] == 3 and group.path == out
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    with pytest.raises(KitError, match="already holds other files"):
        plan_group("cifar10", tiny_cifar, None, other, 3, arch="test_resnet")
    assert not (other / "folds.json").exists()
