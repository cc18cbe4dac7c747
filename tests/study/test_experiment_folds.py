"""`experiment` with a plan that declares `folds`: each cell x seed is a fold group (folds.json, fold-I/, OOF,
cv.json) where its run folder would be, results.csv holds the group's OOF metric, a rerun trains nothing, a stopped
group resumes, and `--gpus` spreads the folds over two CPU "devices" to the same OOF logits."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, run_cli
from sklearn.metrics import accuracy_score

from kaggle_kit.competitions.bootstrap import Interval
from kaggle_kit.records.group_folder import FoldGroup
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.study.plan import parse_plan
from kaggle_kit.study.plan_runs import plan_runs

PLAN = """
competition = "cifar10"
recipe = "paper"
folds = 2

[overrides]
arch = "test_resnet"
stem = "imagenet"
img_size = 32
batch_size = 16
lr = 0.05
workers = 0
device = "cpu"
epochs = 1
aug = "none"
tta = "off"
"""
GROUP = "all/seed=0"


def _experiment(plan, data, out, *more):
    result = run_cli("experiment", plan, "--data-dir", data, "--out", out, *more, cwd=out.parent)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def folded(tiny_cifar, tmp_path_factory):
    work = tmp_path_factory.mktemp("folded")
    plan = work / "cv.toml"
    plan.write_text(PLAN)
    result = _experiment(plan, tiny_cifar, work / "exp")
    return {"work": work, "plan": plan, "exp": work / "exp", "data": tiny_cifar, "result": result}


def test_each_cell_and_seed_is_a_fold_group_and_results_hold_its_oof_metric(folded):
    exp = folded["exp"]
    group = FoldGroup(exp / GROUP)
    assert group.k == 2 and "1 runs - 1 trained" in folded["result"].stdout
    for fold in (1, 2):
        config = RunDir(group.fold_dir(fold)).read_config()
        assert config.recipe.val_fraction == 0.5 and config.recipe.arch == "test_resnet"
        assert json.loads((group.fold_dir(fold) / "split.json").read_text())["val_ids"] == group.val_ids(fold)
    oof, cv = group.oof(), group.cv()
    assert cv["oof_metric"] == pytest.approx(accuracy_score(oof.labels, oof.probs.argmax(1)))
    row = pd.read_csv(exp / "results.csv").iloc[0]
    assert row["status"] == "finished" and row["run_dir"] == GROUP
    assert row["val_metric"] == cv["oof_metric"] and row["metric"] == "accuracy" and bool(row["higher_is_better"])
    assert row["epochs"] == row["epochs_planned"] == 2  # one epoch per fold
    assert "out-of-fold (OOF) metric" in (exp / "report.md").read_text()
    oof_interval = Interval.from_dict(cv["oof_interval"])  # the one group's cell: its OOF interval over 90 images
    assert (
        f"{cv['oof_metric']:.4f} [{oof_interval.low:.3f}, {oof_interval.high:.3f}] n=90"
        in (exp / "report.md").read_text()
    )


def test_a_rerun_trains_nothing_and_a_stopped_group_resumes(folded, tmp_path):
    exp = folded["exp"]
    written = {p: p.stat().st_mtime_ns for p in (exp / GROUP).rglob("*") if p.is_file()}
    again = _experiment(folded["plan"], folded["data"], exp)
    assert "0 trained, 0 resumed, 1 skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in written} == written
    # a group stopped before its second fold: the rerun resumes it, as `train --resume GROUP` would
    stopped = shutil.copytree(exp, tmp_path / "stopped")
    shutil.rmtree(stopped / GROUP / "fold-2")
    for name in ("cv.json", "cv.md", "oof_predictions.npz"):
        (stopped / GROUP / name).unlink()
    first = RunDir(stopped / GROUP / "fold-1").file("best.pt").stat().st_mtime_ns
    resumed = _experiment(folded["plan"], folded["data"], stopped)
    assert "0 trained, 1 resumed, 0 skipped" in resumed.stdout and "fold 2/2: training" in resumed.stderr
    assert RunDir(stopped / GROUP / "fold-1").file("best.pt").stat().st_mtime_ns == first  # fold 1 kept
    np.testing.assert_array_equal(FoldGroup(stopped / GROUP).oof().logits, FoldGroup(exp / GROUP).oof().logits)


def test_gpus_spread_the_folds_to_the_same_oof_logits(folded):
    """Each fold a `kaggle-kit train --resume GROUP --fold I` process on its "GPU" (the plan says device cpu):
    the same split, the same training, so the OOF logits equal the sequential experiment's bit for bit."""
    out = folded["work"] / "exp-gpus"
    parallel = _experiment(folded["plan"], folded["data"], out, "--gpus", "0,1")
    assert "1 runs - 1 trained" in parallel.stdout
    assert "fold 1/2: training on GPU" in parallel.stderr and "fold 2/2: training on GPU" in parallel.stderr
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert logs == ["all.seed=0.fold-1.log", "all.seed=0.fold-2.log"]
    ours, theirs = FoldGroup(out / GROUP), FoldGroup(folded["exp"] / GROUP)
    assert ours.plan()["fold"] == theirs.plan()["fold"]
    np.testing.assert_array_equal(ours.oof().logits, theirs.oof().logits)
    assert pd.read_csv(out / "results.csv")["val_metric"].iloc[0] == theirs.cv()["oof_metric"]
    # every fold finished but no OOF yet (stopped between the last fold and the summary): one process writes it
    for name in ("cv.json", "cv.md", "oof_predictions.npz"):
        (out / GROUP / name).unlink()
    finished = _experiment(folded["plan"], folded["data"], out, "--gpus", "0,1")
    assert "0 trained, 1 resumed" in finished.stdout and (out / "logs" / "all.seed=0.log").is_file()
    np.testing.assert_array_equal(ours.oof().logits, theirs.oof().logits)


def test_submit_sends_the_groups_prediction(folded, tmp_path):
    """--submit on a finished group: the folds' averaged prediction (what `predict GROUP` writes) is uploaded, and
    the ledger records the group as its run."""
    from kaggle_server import KaggleServer
    from test_experiment import kaggle_env

    from kaggle_kit.submissions.ledger import COMPLETE, Ledger

    exp = shutil.copytree(folded["exp"], tmp_path / "exp")
    with KaggleServer("cifar10", folded["data"], score_delay=0.1) as server:
        env = kaggle_env(tmp_path / "home", server.url)
        args = ["experiment", folded["plan"], "--data-dir", folded["data"], "--out", exp, "--submit"]
        submitted = run_cli(*args, cwd=tmp_path, env=env, replace_env=True)
    assert submitted.returncode == 0, submitted.stderr
    assert "1 skipped" in submitted.stdout and "submitted 1, not submitted 0" in submitted.stdout
    (record,) = [r for r in Ledger(tmp_path / "submissions" / "ledger.jsonl").records() if r.status == COMPLETE]
    assert record.run_dir and (exp / GROUP).resolve() == type(exp)(record.run_dir).resolve()
    predicted = run_cli("predict", exp / GROUP, "--out", tmp_path / "group.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert (exp / GROUP / "submission.csv").read_text() == (tmp_path / "group.csv").read_text()


def test_folds_as_a_grid_axis_make_a_group_per_cell(tmp_path):
    text = PLAN.replace("folds = 2\n", "") + '\n[grid]\nfolds = [2, 3]\nschedule = ["step", "cosine"]\n'
    runs = plan_runs(parse_plan(text, "axis", tmp_path / "axis.toml"), tmp_path / "exp")
    assert [(r.cell.name, r.folds) for r in runs] == [
        ("folds=2,schedule=step", 2),
        ("folds=2,schedule=cosine", 2),
        ("folds=3,schedule=step", 3),
        ("folds=3,schedule=cosine", 3),
    ]
    assert runs[2].epochs_planned == 3 and runs[2].histories()[-1] == runs[2].path / "fold-3" / "history.csv"


@pytest.mark.parametrize(
    "change, needles",
    [
        (("folds = 2", "folds = 10"), ["folds = 10", "only 9 training images", "folds = 9 or fewer"]),
        (("epochs = 1", "epochs = 1\nfull_train = true"), ["folds = 2", "full_train cannot apply"]),
        (("folds = 2", "folds = 1"), ["folds = 1", "2 or more"]),
        (("folds = 2", "folds = 2\n[grid]\nfolds = [3]"), ["[grid] folds", "keep it in one place"]),
    ],
)
def test_bad_fold_plans_are_one_line_errors_naming_the_plan(change, needles, tiny_cifar, tmp_path):
    plan = tmp_path / "bad.toml"
    plan.write_text(PLAN.replace(*change))
    result = run_cli("experiment", plan, "--data-dir", tiny_cifar, "--out", tmp_path / "exp", cwd=tmp_path)
    assert_one_line_error(result, str(plan), *needles)
    assert not (tmp_path / "exp" / "all").exists()  # refused before anything trained


def test_a_single_run_where_a_group_is_planned_and_tracking_groups_are_refused(tiny_cifar, tmp_path):
    plan = tmp_path / "cv.toml"
    plan.write_text(PLAN)
    tracked = run_cli("experiment", plan, "--data-dir", tiny_cifar, "--out", tmp_path / "exp", "--track", "tensorboard")
    assert_one_line_error(tracked, "--track does not log fold groups", str(plan))
    single = tmp_path / "exp" / GROUP
    single.mkdir(parents=True)
    (single / "config.json").write_text("{}")  # a run folder the plan made before it said folds
    refused = run_cli("experiment", plan, "--data-dir", tiny_cifar, "--out", tmp_path / "exp", cwd=tmp_path)
    assert_one_line_error(refused, f"{single} is a single run but the plan asks a 2-fold group", "delete that folder")
    assert sorted(p.name for p in single.iterdir()) == ["config.json"]
