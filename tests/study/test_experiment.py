"""`kaggle-kit experiment`, `report` and `runs` end to end on a generated CIFAR-10 sample, against the fake
Kaggle: a tiny plan (2 cells x 2 seeds, one epoch, timm's test_resnet at 32 px) trains, predicts, submits
and reports; a rerun skips finished runs and resumes a partial one; the report's numbers are the run
folders' numbers; winners follow each metric's direction; the shipped plans expand as the study's tables."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, assert_one_line_error
from kaggle_server import DEFAULT_KEY, DEFAULT_USERNAME, KaggleServer

from kaggle_kit.competitions.bootstrap import Interval
from kaggle_kit.competitions.metrics import ACCURACY, LOG_LOSS
from kaggle_kit.core.errors import KitError
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.study import report
from kaggle_kit.study.experiment import run_experiment
from kaggle_kit.study.plan import find_plan, load_plan, parse_plan
from kaggle_kit.study.plan_runs import parse_set, plan_runs
from kaggle_kit.submissions.ledger import COMPLETE, Ledger

TINY_PLAN = """
competition = "cifar10"
title = "tiny schedules"
recipe = "paper"
seeds = 2

[overrides]
arch = "test_resnet"
stem = "imagenet"
img_size = 32
batch_size = 32
workers = 0
device = "cpu"
epochs = 1
aug = "none"

[grid]
schedule = ["constant", "cosine"]

[published]
source = "made-up numbers for the test"
metric = "Kaggle accuracy"
[published.values]
constant = 0.31
cosine = 0.32
"""
CELLS = ["schedule=constant", "schedule=cosine"]
RUNS = [f"{cell}/seed={seed}" for cell in CELLS for seed in (0, 1)]


def kit(args, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command in this process with `env` as the whole environment (`--submit` too: kaggle-kit signs the
    client in on each call with the environment it finds then, whatever `import kaggle` found first)."""
    from helpers import run_cli

    return run_cli(*args, cwd=cwd, env=env, replace_env=True, timeout=timeout)


def kaggle_env(home: Path, endpoint: str) -> dict:
    """The fake Kaggle's credentials and address; nothing of the machine's Kaggle setup leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE") and "proxy" not in k.lower()}
    env.update(
        HOME=str(home),
        KAGGLE_CONFIG_DIR=str(home / "kaggle-config"),
        KAGGLE_USERNAME=DEFAULT_USERNAME,
        KAGGLE_KEY=DEFAULT_KEY,
        KAGGLE_KIT_API_ENDPOINT=endpoint,
        KAGGLE_KIT_HTTP_TIMEOUT="10",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
    )
    return env


def snapshot(exp: Path) -> dict:
    return {name: (exp / name / "best.pt").stat().st_mtime_ns for name in RUNS}


@pytest.fixture(scope="module")
def experiment(sample_zips, tmp_path_factory):
    """The tiny plan run once with --submit, then rerun after one run lost its checkpoints (a crash in epoch 0)."""
    work = tmp_path_factory.mktemp("work")
    data = work / "data"
    shutil.copytree(sample_zips["cifar10"], data)
    plan = work / "tiny.toml"
    plan.write_text(TINY_PLAN)
    exp = work / "exp"
    with KaggleServer("cifar10", sample_zips["cifar10"], score_delay=0.1) as server:
        env = kaggle_env(work / "home", server.url)
        first = kit(["experiment", plan, "--data-dir", data, "--out", exp, "--submit"], work, env)
        assert first.returncode == 0, first.stderr
        texts = {name: (exp / name).read_text() for name in ("results.csv", "report.md")}
        before = snapshot(exp)
        partial = exp / "schedule=cosine" / "seed=1"
        original = pd.read_csv(partial / "history.csv")
        submission = (partial / "submission.csv").read_text()
        for name in ("best.pt", "last.pt", "last.prev.pt", "history.csv", "val_predictions.npz"):
            (partial / name).unlink(missing_ok=True)
        rerun = kit(["experiment", plan, "--data-dir", data, "--out", exp, "--submit"], work, env)
        assert rerun.returncode == 0, rerun.stderr
    quiet = kit(["experiment", plan, "--data-dir", data, "--out", exp, "--quiet"], work, env)
    assert quiet.returncode == 0, quiet.stderr
    return {
        "work": work,
        "exp": exp,
        "env": env,
        "first": first,
        "texts": texts,
        "before": before,
        "rerun": rerun,
        "quiet": quiet,
        "partial": partial,
        "original": original,
        "submission": submission,
        "data": data,
        "plan": plan,
    }


def test_every_cell_and_seed_is_a_run_folder_predicted_and_submitted(experiment):
    exp, first = experiment["exp"], experiment["first"]
    assert "4 runs - 4 trained, 0 resumed, 0 skipped" in first.stdout
    assert "run 4/4" in first.stderr and "eta" in first.stderr
    for name in RUNS:
        run = exp / name
        config = json.loads((run / "config.json").read_text())
        assert (
            config["recipe"]["seed"] == int(name[-1])
            and config["recipe"]["schedule"] == name.split("=")[1].split("/")[0]
        )
        assert len(pd.read_csv(run / "history.csv")) == 1 and (run / "best.pt").is_file()
        assert (run / "submission.csv").is_file()
    records = [r for r in Ledger(experiment["work"] / "submissions" / "ledger.jsonl").records() if r.status == COMPLETE]
    assert sorted(Path(r.run_dir).resolve() for r in records) == sorted((exp / name).resolve() for name in RUNS)
    # every cell has a seed=0 folder: the recorded run names carry the experiment and the cell
    assert sorted(r.run for r in records) == sorted(f"exp.{name.replace('/', '.')}" for name in RUNS)
    experiment_json = json.loads((exp / "experiment.json").read_text())
    assert [r["path"] for r in experiment_json["runs"]] == RUNS and experiment_json["seeds"] == 2


def test_rerun_skips_finished_runs_and_resumes_the_partial_one(experiment):
    rerun, exp = experiment["rerun"], experiment["exp"]
    assert "0 trained, 1 resumed, 3 skipped (already finished), 0 failed" in rerun.stdout
    assert "schedule=cosine/seed=1: resuming" in rerun.stderr
    quiet = experiment["quiet"]  # --quiet: the summary, no line per run or plan ETA
    assert "0 trained, 0 resumed, 4 skipped (already finished), 0 failed" in quiet.stdout
    assert "run 1/4" in rerun.stderr and "run " not in quiet.stderr and "plan:" not in quiet.stderr, quiet.stderr
    after = snapshot(exp)
    before = experiment["before"]
    assert {n for n in RUNS if after[n] != before[n]} == {"schedule=cosine/seed=1"}
    # the same seed on the same CPU: the resumed run ends exactly where the first one did
    resumed = pd.read_csv(experiment["partial"] / "history.csv")
    assert resumed["val_metric"].tolist() == experiment["original"]["val_metric"].tolist()
    # the retrained run was predicted again (its checkpoint is newer) into the very same file, so no run
    # was uploaded twice: the ledger already holds a score for each file
    assert "submitted 0, not submitted 4" in rerun.stdout
    assert rerun.stdout.count("already scored by Kaggle") == 4
    assert (experiment["partial"] / "submission.csv").read_text() == experiment["submission"]
    assert (experiment["partial"] / "submission.csv").stat().st_mtime_ns > experiment["before"][
        "schedule=cosine/seed=1"
    ]


def test_report_numbers_are_the_run_folders_numbers(experiment):
    exp = experiment["exp"]
    results = pd.read_csv(exp / "results.csv")
    assert results["cell"].tolist() == [n.split("/")[0] for n in RUNS] and results["seed"].tolist() == [0, 1, 0, 1]
    records = {
        str(Path(r.run_dir).resolve()): r
        for r in Ledger(experiment["work"] / "submissions" / "ledger.jsonl").records()
        if r.status == COMPLETE
    }
    text = (exp / "report.md").read_text()
    for _, row in results.iterrows():
        run = exp / row["run_dir"]
        history = pd.read_csv(run / "history.csv")
        assert row["val_metric"] == history["val_metric"].max()  # accuracy: the best epoch is the highest
        assert row["epochs"] == len(history) and row["train_seconds"] == pytest.approx(history["seconds"].sum())
        assert row["kaggle_public"] == records[str(run.resolve())].public_score
        assert row["status"] == "finished" and row["wall_seconds"] > 0
    for cell in CELLS:
        values = [pd.read_csv(exp / cell / f"seed={s}" / "history.csv")["val_metric"].max() for s in (0, 1)]
        mean, std = (
            sum(values) / 2,
            math.sqrt(sum((v - sum(values) / 2) ** 2 for v in values)),
        )  # ddof=1 with two values
        assert f"{mean:.4f} ± {std:.4f}" in text
        # beside the seed-to-seed std: the images one run validated on and its own interval's half-width
        images = len(json.loads((exp / cell / "seed=0" / "split.json").read_text())["val_ids"])
        assert f"{mean:.4f} ± {std:.4f} (n={images} a run, 95% interval ±" in text, text
    assert "accuracy - higher is better" in text and "Kaggle public score" in text and "0.3100" in text
    for png in ("table.png", "curves.png", "wall-time.png"):
        assert (exp / png).read_bytes()[:4] == b"\x89PNG"


def test_report_command_rebuilds_the_same_report(experiment):
    exp = experiment["exp"]
    written = {name: (exp / name).read_text() for name in ("results.csv", "report.md")}
    for name in ("results.csv", "report.md", "table.png", "curves.png", "wall-time.png"):
        (exp / name).unlink()
    rebuilt = kit(["report", exp], experiment["work"], experiment["env"])
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert {name: (exp / name).read_text() for name in written} == written
    assert all((exp / png).is_file() for png in ("table.png", "curves.png", "wall-time.png"))
    # a lead on a few dozen validation images is a win only beyond their noise: either way it is said
    headline = next(line for line in rebuilt.stdout.splitlines() if line.startswith("validation accuracy, higher"))
    assert "best schedule=" in headline or ("no win, schedule=" in headline and "within noise" in headline)


def test_runs_lists_each_run_with_its_metric_direction_and_kaggle_score(experiment):
    listed = kit(["runs", "cifar10", "--root", experiment["exp"]], experiment["work"], experiment["env"])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    scores = {
        str(Path(r.run_dir).resolve()): r.public_score
        for r in Ledger(experiment["work"] / "submissions" / "ledger.jsonl").records()
        if r.status == COMPLETE
    }
    for name in RUNS:
        (line,) = [row for row in lines if row.startswith(f"{experiment['exp']}/{name} ")]
        _, competition, arch, epochs, *_ = line.split()
        history = pd.read_csv(experiment["exp"] / name / "history.csv")
        assert (competition, arch, epochs) == ("cifar10", "test_resnet", "1/1")
        # what predict submits, with its interval and n, where calibrated; else the best epoch's figure
        calibration = RunDir(experiment["exp"] / name).read_config().calibration_of("best") or {}
        interval = Interval.from_dict(calibration.get("val_interval"))
        shown = str(interval) if interval else f"{history['val_metric'].max():.4f}"
        assert f"  {shown}  " in line
        assert f"  {scores[str((experiment['exp'] / name).resolve())]:.5f}  " in line
    assert "accuracy: higher is better" in listed.stdout
    other = kit(["runs", "dog_breed", "--root", experiment["exp"]], experiment["work"], experiment["env"])
    assert other.returncode == 0 and other.stdout.startswith("no runs of dog_breed")


def test_changed_settings_are_refused_before_anything_trains(experiment):
    with pytest.raises(
        KitError, match=r"seed=0 was trained with lr=0.0256 but the plan now asks lr=0.1: delete that folder"
    ):
        run_experiment(experiment["plan"], experiment["data"], experiment["exp"], overrides=parse_set(["lr=0.1"]))
    with pytest.raises(KitError, match="--epochs conflicts with the plan's grid axis 'epochs'"):
        run_experiment("cifar10-best", experiment["data"], experiment["exp"], epochs=1)


def test_other_data_is_refused_before_anything_trains(experiment, sample_zips, tmp_path):
    """Finished runs of another dataset would be skipped and reported beside new ones in one table."""
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.samples import write_sample

    other = write_sample(resolve("cifar10"), tmp_path / "other", n_train=40, n_test=10).parent
    before = snapshot(experiment["exp"])
    with pytest.raises(
        KitError, match=r"seed=0 was trained on other data \(.*\): pass that data folder again, or another --out"
    ):
        run_experiment(experiment["plan"], other, experiment["exp"])
    assert snapshot(experiment["exp"]) == before  # nothing retrained


def test_gpus_runs_each_run_as_its_own_kaggle_kit_train_with_the_same_result(experiment):
    """--gpus 0,1: one `kaggle-kit train` process per "GPU" (the plan says device cpu, so a CPU box can run it);
    the flags rebuild the planned recipe exactly, so the runs equal the in-process ones of the same seed."""
    exp = experiment["work"] / "exp-gpus"
    env = {**experiment["env"], "KAGGLE_KIT_API_ENDPOINT": "http://127.0.0.1:9"}  # no Kaggle needed here
    parallel = kit(
        [
            "experiment",
            experiment["plan"],
            "--data-dir",
            experiment["data"],
            "--out",
            exp,
            "--seeds",
            "1",
            "--gpus",
            "0,1",
        ],
        experiment["work"],
        env,
    )
    assert parallel.returncode == 0, parallel.stderr
    assert "2 runs - 2 trained" in parallel.stdout
    assert "on GPU 0" in parallel.stderr and "on GPU 1" in parallel.stderr
    for cell in CELLS:
        ours, theirs = exp / cell / "seed=0", experiment["exp"] / cell / "seed=0"
        assert (
            json.loads((ours / "config.json").read_text())["recipe"]
            == json.loads((theirs / "config.json").read_text())["recipe"]
        )
        assert (
            pd.read_csv(ours / "history.csv")["val_metric"].tolist()
            == pd.read_csv(theirs / "history.csv")["val_metric"].tolist()
        )
    assert pd.read_csv(exp / "results.csv")["wall_seconds"].gt(0).all()
    # each run's output went to its own log, not interleaved into the terminal
    for cell in CELLS:
        log = (exp / "logs" / f"{cell}.seed=0.log").read_text()
        assert f"--out {exp / cell / 'seed=0'}" in log
        assert "training " in log and " eta " in log and "epoch 1: lr " in log  # progress and the epoch's line
        assert f"log {exp / 'logs' / f'{cell}.seed=0.log'}" in parallel.stderr
    # the runs' own epoch lines went to their logs; the runner's status lines (which may quote a progress bar's
    # "epoch 1/1" when a run is slow) are all the terminal holds
    assert not re.search(r"^epoch \d+: ", parallel.stderr, re.MULTILINE), parallel.stderr


def test_gpus_reports_each_running_runs_latest_line_while_they_train(experiment):
    """Runs side by side log to files: the caller still hears from each of them as they train."""
    events = []
    out = experiment["work"] / "exp-gpus-status"
    result = run_experiment(
        experiment["plan"],
        experiment["data"],
        out,
        seeds=1,
        gpus=["0", "1"],
        on_event=events.append,
        status_every_s=0.2,
    )
    assert sorted(result.trained) == [f"{cell}/seed=0" for cell in CELLS]
    progress = [e for e in events if e["event"] == "progress"]
    assert {e["run"] for e in progress} == {f"{cell}/seed=0" for cell in CELLS}
    assert {e["gpu"] for e in progress} == {"0", "1"}
    # the lines are the runs' own, as their logs hold them
    logs = "".join((out / "logs" / f"{cell}.seed=0.log").read_text() for cell in CELLS)
    assert all(e["line"] in logs for e in progress) and any(" eta " in e["line"] for e in progress)


def test_gpus_names_a_failed_runs_error_and_its_log(experiment):
    """A run that fails in its own process: the experiment says why (the process's one-line error) and where
    its whole log is, and goes on with the others."""
    exp = experiment["work"] / "exp-gpus-damaged"
    for cell in CELLS:
        shutil.copytree(experiment["exp"] / cell / "seed=0", exp / cell / "seed=0")
    damaged = exp / "schedule=cosine" / "seed=0"
    (damaged / "history.csv").unlink()  # partial: resumed from last.pt ...
    (damaged / "last.pt").write_bytes(b"not a checkpoint")  # ... which a crash left unreadable
    env = {**experiment["env"], "KAGGLE_KIT_API_ENDPOINT": "http://127.0.0.1:9"}
    parallel = kit(
        [
            "experiment",
            experiment["plan"],
            "--data-dir",
            experiment["data"],
            "--out",
            exp,
            "--seeds",
            "1",
            "--gpus",
            "0,1",
        ],
        experiment["work"],
        env,
    )
    log = exp / "logs" / "schedule=cosine.seed=0.log"
    assert_one_line_error(
        parallel,
        "schedule=cosine/seed=0",
        f"{damaged / 'last.pt'}",
        "is damaged",
        "exited with code 2",
        f"whole log: {log}",
    )
    assert "error: error:" not in parallel.stderr
    assert "1 skipped (already finished), 1 failed" in parallel.stdout
    assert f"error: {damaged / 'last.pt'}" in log.read_text()


# --------------------------------------------------------------------------------------- winners and directions


def test_winner_follows_the_metric_direction():
    assert report.winner({"a": 0.81, "b": 0.88, "c": None}, ACCURACY) == "b"
    assert report.winner({"a": 0.81, "b": 0.88, "c": float("nan")}, LOG_LOSS) == "a"
    # the study's Table 1: log loss 0.8018 (ResNet-18) beats 1.3327 (ResNet-34)
    assert report.winner({"resnet34": 1.3327, "resnet18": 0.8018}, LOG_LOSS) == "resnet18"
    assert report.winner({"x": None}, ACCURACY) is None
    assert report.stat([0.8, 0.9]) == report.Stat(pytest.approx(0.85), pytest.approx(math.sqrt(0.005)), 2)
    assert report.stat([0.7]).std is None and report.stat([None]) is None


def _fake_run(path: Path, arch: str, seed: int, val_losses: list[float], planned: int | None = None) -> None:
    """A dog_breed run folder as the trainer leaves it, reduced to what the report reads; with `planned` epochs
    beyond the losses given, one interrupted before its end."""
    path.mkdir(parents=True)
    recipe = {
        "name": "paper",
        "arch": arch,
        "epochs": planned or len(val_losses),
        "seed": seed,
        "batch_size": 128,
        "lr": 0.0128,
        "schedule": "step",
        "aug": "paper",
    }
    (path / "config.json").write_text(json.dumps({"competition": "dog_breed", "recipe": recipe}))
    history = pd.DataFrame(
        {
            "epoch": range(1, len(val_losses) + 1),
            "lr": 0.01,
            "train_loss": 2.0,
            "train_accuracy": 0.5,
            "val_loss": val_losses,
            "val_accuracy": 0.5,
            "val_metric": val_losses,
            "seconds": 3.0,
            "images_per_s": 100.0,
        }
    )
    history.to_csv(path / "history.csv", index=False)
    (path / "best.pt").write_bytes(b"weights")


def _table1_experiment(exp: Path, losses: dict[str, list[list[float]]], planned: int | None = None) -> None:
    runs = []
    for arch, curves in losses.items():
        for seed, curve in enumerate(curves):
            _fake_run(exp / f"arch={arch}" / f"seed={seed}", arch, seed, curve, planned)
            runs.append(
                {"cell": f"arch={arch}", "values": {"arch": arch}, "seed": seed, "path": f"arch={arch}/seed={seed}"}
            )
    shutil.copy(find_plan("study-table1"), exp / "plan.toml")
    (exp / "experiment.json").write_text(
        json.dumps({"plan": "study-table1", "competition": "dog_breed", "seeds": 2, "runs": runs})
    )


def test_table1_report_marks_the_lower_log_loss_and_notes_the_studys_ranking(tmp_path):
    exp = tmp_path / "table1"
    _table1_experiment(exp, {"resnet18": [[1.2, 0.82], [1.1, 0.80]], "resnet34": [[1.4, 1.30], [1.5, 1.36]]})
    result = report.write_report(exp, ledger=Ledger(tmp_path / "ledger.jsonl"))
    text = (exp / "report.md").read_text()
    assert "log loss - lower is better" in text
    assert "| resnet18 | **0.8100 ± 0.0141** ★ |" in text and "| resnet34 | 1.3300 ± 0.0424 |" in text
    assert "| resnet18 | **0.8018** ★ |" in text and "| resnet34 | 1.3327 |" in text
    assert (
        "The study called arch=resnet34 (1.3327) the better one, ranking it above arch=resnet18 (0.8018); but for "
        "log loss lower is better, so by the study's own numbers arch=resnet18 won."
    ) in text
    assert any(line.startswith("validation log loss, lower is better: best arch=resnet18") for line in result.headlines)
    results = pd.read_csv(exp / "results.csv")
    assert results["val_metric"].tolist() == [0.82, 0.80, 1.30, 1.36]  # the LOWEST epoch of each run
    assert results["best_epoch"].tolist() == [2, 2, 2, 2]  # counted from 1, as history.csv


def test_a_tie_has_no_winner_and_a_cell_short_of_seeds_says_so(tmp_path):
    """Equal cells get no star and no "leads by 0.0000"; a cell whose mean is of fewer seeds than planned shows it,
    since its one value is ranked beside means of two."""
    tie = tmp_path / "tie"
    _table1_experiment(tie, {"resnet18": [[0.9], [0.7]], "resnet34": [[0.8], [0.8]]})
    result = report.write_report(tie, ledger=Ledger(tmp_path / "ledger.jsonl"))
    text = (tie / "report.md").read_text()
    assert "| resnet18 | 0.8000 ± 0.1414 |" in text and "| resnet34 | 0.8000 ± 0.0000 |" in text
    assert "leads" not in text
    assert (
        "validation log loss, lower is better: arch=resnet18, arch=resnet34 tie at 0.8000 ± 0.1414" in result.headlines
    )

    short = tmp_path / "short"
    _table1_experiment(short, {"resnet18": [[0.9], [0.8]], "resnet34": [[0.7]]})
    report.write_report(short, ledger=Ledger(tmp_path / "ledger.jsonl"))
    assert "| resnet34 | **0.7000 (1 of 2 seeds finished)** ★ |" in (short / "report.md").read_text()


def test_an_interrupted_run_is_marked_in_its_cell_and_left_out_of_mean_and_ranking(tmp_path):
    """Two planned epochs. resnet34's seed 1 stopped after its first (a high early loss): averaged in, it would move
    resnet34 from 0.70 to 1.55. resnet18 finished neither seed: its early numbers would take the star."""
    exp = tmp_path / "interrupted"
    _table1_experiment(exp, {"resnet18": [[0.5], [0.4]], "resnet34": [[0.8, 0.7], [2.4]]}, planned=2)
    result = report.write_report(exp, ledger=Ledger(tmp_path / "ledger.jsonl"))
    text = (exp / "report.md").read_text()
    assert "| resnet34 | **0.7000 (1 of 2 seeds finished)** ★ |" in text
    assert "| resnet18 | – (0 of 2 seeds finished) |" in text  # no value, so no rank
    headline = "validation log loss, lower is better: best arch=resnet34 (0.7000)"
    assert any(line.startswith(headline) for line in result.headlines)
    results = pd.read_csv(exp / "results.csv")
    assert results["status"].tolist() == ["partial", "partial", "finished", "partial"]


def test_results_csv_has_one_column_per_name_and_the_calibrated_figure_names_its_checkpoint(tmp_path):
    exp = tmp_path / "table1"
    _table1_experiment(exp, {"resnet18": [[1.2, 0.82]], "resnet34": [[1.4, 1.30]]})
    calibration = {
        "checkpoint": "best",
        "epoch": 1,
        "validated": True,
        "tta": False,
        "temperature": 0.547,
        "val_metric": 0.79,
    }
    path = exp / "arch=resnet18" / "seed=0" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "calibration": {"best": calibration}}))
    report.write_report(exp, ledger=Ledger(tmp_path / "ledger.jsonl"))
    header = (exp / "results.csv").read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header))
    assert "arch" in header and "run_arch" in header  # the plan's axis, the run's own
    results = pd.read_csv(exp / "results.csv")
    assert results["val_metric_calibrated"].tolist()[0] == 0.79
    assert results["calibrated_with"].tolist()[0] == "best.pt epoch 2, TTA off, T=0.547"


def test_runs_shows_the_settings_that_decide_a_result(tmp_path, capsys):
    from kaggle_kit.cli import main

    base = {
        "name": "paper",
        "arch": "resnet18",
        "epochs": 2,
        "seed": 0,
        "img_size": 224,
        "pretrained": True,
        "freeze": True,
        "unfreeze_after": None,
        "tta": "auto",
    }
    variants = {
        "plain": {},
        "no-tta": {"tta": "off"},
        "scratch": {"pretrained": False},
        "unfrozen": {"freeze": False},
        "small": {"img_size": 128},
    }
    for name, change in variants.items():
        _fake_run(tmp_path / "runs" / name, "resnet18", 0, [1.0, 0.9])
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        config["recipe"] = {**base, **change}
        (tmp_path / "runs" / name / "config.json").write_text(json.dumps(config))
    calibration = {"checkpoint": "best", "epoch": 1, "validated": True, "tta": True, "temperature": 1.25}
    path = tmp_path / "runs" / "plain" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "calibration": calibration}))  # the old flat form
    main(["runs", "--root", str(tmp_path / "runs")])
    printed = capsys.readouterr().out.splitlines()
    lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in printed if "/runs/" in line}
    assert len({line.split(None, 1)[1] for line in lines.values()}) == len(variants)  # no two lines alike
    assert "pretrained frozen 224px TTA on T=1.250" in lines["plain"]
    assert "TTA off uncalibrated" in lines["no-tta"] and "scratch" in lines["scratch"]
    assert "unfrozen" in lines["unfrozen"] and "128px" in lines["small"]


# --------------------------------------------------------------------------------------- plans


def test_shipped_plans_expand_to_the_studys_tables(tmp_path):
    table2 = load_plan(find_plan("study-table2"))
    runs = plan_runs(table2, tmp_path)
    assert len(table2.cells()) == 6 and len(runs) == 18
    assert [c.name for c in table2.cells()][:2] == ["aug=none,schedule=constant", "aug=none,schedule=step"]
    assert runs[-1].path == tmp_path / "aug=paper,schedule=cosine" / "seed=2"
    assert runs[-1].recipe.arch == "resnet18" and runs[-1].recipe.stem == "cifar" and runs[-1].recipe.seed == 2
    assert (
        table2.published.values["aug=paper,schedule=cosine"] == 0.8848
        and table2.published.values["aug=none,schedule=constant"] == 0.8294
    )
    assert (table2.table_rows, table2.table_columns, table2.curves_by) == (("aug",), "schedule", "schedule")

    table1 = load_plan(find_plan("dog_breed/study-table1"))
    cells = table1.cells()
    assert [c.name for c in cells] == ["arch=resnet18", "arch=resnet34"] and len(plan_runs(table1, tmp_path)) == 6
    recipe = plan_runs(table1, tmp_path)[0].recipe
    assert recipe.pretrained and recipe.freeze and recipe.head == "mlp" and recipe.head_hidden == 256
    assert table1.published.values == {"arch=resnet18": 0.8018, "arch=resnet34": 1.3327}
    assert table1.published.claimed_best == "arch=resnet34"

    for name, cells_expected in (("cifar10-best", 2), ("dog-breed-best", 2)):
        plan = load_plan(find_plan(name))
        assert len(plan.cells()) == cells_expected and len(plan_runs(plan, tmp_path)) == cells_expected * plan.seeds
    for folder in (REPO / "competitions" / "cifar10" / "plans", REPO / "competitions" / "dog_breed" / "plans"):
        assert not (folder / ".keep").exists()
    assert len(plan_runs(table2, tmp_path, seeds=1, epochs=2)) == 6


@pytest.mark.parametrize(
    "text,needle",
    [
        ("competition = 'cifar10'\nseed = 3\n", "unknown field 'seed' - did you mean seeds?"),
        (
            "competition = 'cifar10'\n[grid]\nschedul = ['step']\n",
            "unknown setting 'schedul' for Recipe - did you mean schedule?",
        ),
        ("competition = 'cifar10'\n[overrides]\nlr = 'fast'\n", "[overrides]: invalid setting lr='fast'"),
        (
            "competition = 'cifar10'\n[grid]\nschedule = ['step']\n[published.values]\ncosine = 0.9\n",
            "'cosine' is not a cell of the grid",
        ),
        ("competition = 'cifar100'\n", "unknown competition 'cifar100'"),
        ("competition = 'cifar10'\nrecipe = 'papr'\n", "unknown recipe 'papr'"),
        ("competition = 'cifar10'\n[grid]\nseed = [0, 1]\n", "'seed' cannot be set by a plan: use `seeds = N`"),
        ("competition = 'cifar10'\n[grid]\naug = []\n", "[grid] aug: give a non-empty list"),
        (
            "competition = 'cifar10'\n[grid]\naug = ['none']\n[table]\ncolumns = 'augs'\n",
            "'augs' is not a grid axis - did you mean aug?",
        ),
        ("competition = 'cifar10'\nseeds = [\n", "not valid TOML"),
    ],
)
def test_plan_mistakes_are_one_line_errors_naming_the_file(text, needle, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(KitError) as error:
        load_plan(path)
    message = str(error.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_unknown_cell_values_fail_before_training(tmp_path):
    plan = parse_plan("competition = 'cifar10'\n[grid]\naug = ['none', 'fancy']\n", "bad")
    with pytest.raises(KitError, match="cell aug=fancy: unknown augmentation 'fancy'"):
        plan_runs(plan, tmp_path)
    assert parse_set(["ema=none", "lr=0.05"]) == {"ema": None, "lr": "0.05"}
    with pytest.raises(KitError, match="--set lr: write key=value"):
        parse_set(["lr"])


def test_experiment_cli_errors_are_one_line(tmp_path):
    from helpers import run_cli

    assert_one_line_error(
        run_cli("experiment", "study-tabel2", cwd=tmp_path), "unknown plan 'study-tabel2'", "did you mean study-table2"
    )
    assert_one_line_error(run_cli("report", tmp_path, cwd=tmp_path), "is not an experiment folder")


def test_an_experiment_runs_name_carries_its_experiment_and_cell(tmp_path):
    from kaggle_kit.records.run_folder import RunDir

    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "experiment.json").write_text("{}")
    assert (
        RunDir(tmp_path / "study" / "aug=on,schedule=cosine" / "seed=0").name == "study.aug=on,schedule=cosine.seed=0"
    )
    assert RunDir(tmp_path / "runs" / "cifar10" / "20261127-resnet18-fast").name == "20261127-resnet18-fast"


def _with_predictions(exp: Path, cell: str, seed: int, labels, logits) -> None:
    RunDir(exp / cell / f"seed={seed}").save_val_predictions([f"im{n}" for n in range(len(labels))], labels, logits)


@pytest.mark.parametrize("gap", ["one image", "every image"])
def test_a_lead_is_a_win_only_where_the_paired_interval_of_the_difference_excludes_zero(tmp_path, gap):
    exp = tmp_path / "table1"
    _table1_experiment(exp, {"resnet18": [[1.2, 0.80], [1.1, 0.80]], "resnet34": [[1.4, 0.81], [1.5, 0.81]]})
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 120, 43)
    for seed in (0, 1):
        base = rng.normal(size=(43, 120))
        base[np.arange(43), labels] += 2.0
        better = base.copy()
        rows = np.arange(1) if gap == "one image" else np.arange(43)
        better[rows, labels[rows]] += 1.0  # the better cell is surer of the right breed on these images
        _with_predictions(exp, "arch=resnet18", seed, labels, better)
        _with_predictions(exp, "arch=resnet34", seed, labels, base)
    result = report.write_report(exp, ledger=Ledger(tmp_path / "ledger.jsonl"))
    text = (exp / "report.md").read_text()
    assert "Validation noise: arch=resnet18 - arch=resnet34 on the validation images they share" in text
    if gap == "one image":  # 86 paired rows, one of them better: no star, and the headline says so
        assert "| resnet18 | 0.8000 ± 0.0000 |" in text and "within noise" in text
        assert any("no win, arch=resnet18 - arch=resnet34" in line for line in result.headlines)
    else:
        assert "| resnet18 | **0.8000 ± 0.0000** ★ |" in text and "a win" in text
        assert any(
            line.startswith("validation log loss, lower is better: best arch=resnet18") for line in result.headlines
        )
