"""`--ray`: folds, experiment cells and tune trials as tasks on a real local Ray cluster (one per session)."""

import json
import os
import signal
import threading
import time

import numpy as np
import optuna
import pandas as pd
import psutil
import torch
from helpers import FOLD_ARGS, TINY_CPU_ARGS, assert_one_line_error, run_cli
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.workflows.cross_validation import FoldGroup


def _kill_once_after_first_epoch(run_dir, needle: str) -> dict:
    """SIGKILL, once, the process training `run_dir` (its command line holds `needle`) as soon as its last.pt exists:
    a task whose process dies mid-run, as the out-of-memory killer would do it."""
    seen: dict = {}

    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run_dir / "last.pt").is_file():
            time.sleep(0.02)
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            if "kaggle_kit" in line and needle in line:
                os.kill(process.pid, signal.SIGKILL)
                seen["killed"] = process.pid
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    seen["thread"] = thread
    return seen


def test_folds_on_ray_match_the_local_oof_bit_for_bit_through_a_killed_task(
    ray_cluster, cifar_group, tiny_cifar, tmp_path
):
    """Each fold a Ray task; fold 1's process is SIGKILLed after its first epoch, Ray retries the task, and it resumes
    the fold's last.pt: the OOF logits equal the in-process run's exactly."""
    out = tmp_path / "on-ray"
    killer = _kill_once_after_first_epoch(out / "fold-1", "--fold 1")
    result = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--ray", "auto", "--out", out,
                     *FOLD_ARGS)  # fmt: skip
    killer["thread"].join()
    assert result.returncode == 0, result.stderr
    assert "killed" in killer, "fold 1's process was not found to kill"
    log = (out / "logs" / "fold-1.log").read_text()
    assert log.count("Ray task on") == 2 and "killed by SIGKILL: Ray retries the task" in log, log
    assert "resuming" in log.split("killed by SIGKILL")[1], log
    local, on_ray = FoldGroup(cifar_group[0]), FoldGroup(out)
    assert on_ray.plan()["fold"] == local.plan()["fold"]
    np.testing.assert_array_equal(on_ray.oof().logits, local.oof().logits)
    assert on_ray.cv()["oof_metric"] == local.cv()["oof_metric"]


def test_ray_flag_without_ray_installed_says_how_to_install(tiny_cifar, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the package
    result = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "2", "--ray", "auto",
                     "--out", tmp_path / "g", *FOLD_ARGS)  # fmt: skip
    assert_one_line_error(result, "--ray needs Ray", "pip install 'kaggle-kit[ray]'")
    assert not (tmp_path / "g").exists()  # refused before the group folder was written
    plan = tmp_path / "cells.toml"
    plan.write_text(TWO_CELLS)
    result = run_cli("experiment", plan, "--data-dir", tiny_cifar, "--out", tmp_path / "e", "--ray", "auto")
    assert_one_line_error(result, "--ray needs Ray", "pip install 'kaggle-kit[ray]'")
    assert not (tmp_path / "e").exists()


TWO_CELLS = """
competition = "cifar10"
recipe = "paper"
seeds = 1

[overrides]
arch = "test_resnet"
stem = "imagenet"
img_size = 24
batch_size = 32
workers = 0
device = "cpu"
epochs = 1
aug = "none"
tta = "off"

[grid]
schedule = ["constant", "cosine"]
"""


def test_experiment_cells_on_ray_equal_the_local_runners(ray_cluster, tiny_cifar, tmp_path):
    """Two cells, each a Ray task writing its run folder in the experiment's folder: the same weights and results
    as the sequential local runner's."""
    plan = tmp_path / "cells.toml"
    plan.write_text(TWO_CELLS)
    local = run_cli("experiment", plan, "--data-dir", tiny_cifar, "--out", tmp_path / "local", cwd=tmp_path)
    on_ray = run_cli("experiment", plan, "--data-dir", tiny_cifar, "--out", tmp_path / "ray", "--ray", "auto",
                     cwd=tmp_path)  # fmt: skip
    assert local.returncode == 0 and on_ray.returncode == 0, local.stderr + on_ray.stderr
    assert "2 runs - 2 trained" in on_ray.stdout and "training on Ray slot" in on_ray.stderr
    ours, theirs = pd.read_csv(tmp_path / "ray" / "results.csv"), pd.read_csv(tmp_path / "local" / "results.csv")
    assert list(ours["val_metric"]) == list(theirs["val_metric"])
    for cell in ("schedule=constant", "schedule=cosine"):
        a, b = (RunDir(tmp_path / side / cell / "seed=0").load_checkpoint("last")["model"] for side in ("ray", "local"))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert "Ray task on" in (tmp_path / "ray" / "logs" / f"{cell}.seed=0.log").read_text()


def test_tune_runs_its_trials_as_ray_tasks(ray_cluster, tiny_cifar, tmp_path):
    """Two trials side by side on the 2-CPU cluster, drawn by the driver's sampler, written to the study folder."""
    space = tmp_path / "lr.toml"
    space.write_text('seed = 0\npruner = "none"\n[params.lr]\ndistribution = "log-uniform"\nlow = 0.01\nhigh = 0.2\n')
    args = ["tune", "cifar10", "--data-dir", tiny_cifar, "--space", space, "--trials", "2", "--ray", "auto"]
    result = run_cli(*args, *TINY_CPU_ARGS, "--tta", "off", "--epochs", "1", "--img-size", "24", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trials: 2 complete" in result.stdout
    study_dir = tmp_path / "runs" / "cifar10" / "tune-lr"
    storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    trials = optuna.load_study(study_name="lr", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 and trials[0].params != trials[1].params
    for trial in trials:
        folder = study_dir / f"trial-{trial.number:03d}"
        record = json.loads((folder / "trial.json").read_text())
        assert record["state"] == "complete" and record["value"] == trial.value
        assert RunDir(folder).read_config().recipe.lr == trial.params["lr"]
        assert (study_dir / "logs" / f"trial-{trial.number:03d}.log").stat().st_size > 0


def test_tune_on_ray_queues_a_trial_the_full_disk_stopped_and_the_next_run_finishes_it(
    ray_cluster, tiny_cifar, tmp_path, monkeypatch
):
    """The trial's task finds the disk full at its 2nd kept write: one line naming the folder, the trial queued
    again with its parameters; the next run (space freed) trains it in the same folder."""
    from kaggle_kit.core import faults

    monkeypatch.setattr(faults, "_count", 10**6)  # the driver's own writes (this process's) are never the full one
    space = tmp_path / "lr.toml"
    space.write_text('seed = 0\npruner = "none"\n[params.lr]\ndistribution = "log-uniform"\nlow = 0.01\nhigh = 0.2\n')
    args = ["tune", "cifar10", "--data-dir", tiny_cifar, "--space", space, "--trials", "1", "--ray", "auto"]
    args += [*TINY_CPU_ARGS, "--tta", "off", "--epochs", "1", "--img-size", "24"]
    full = run_cli(*args, cwd=tmp_path, env={faults.ENOSPC_ENV: "2"})
    study_dir = tmp_path / "runs" / "cifar10" / "tune-lr"
    assert_one_line_error(full, "no space left in", str(study_dir / "trial-000"), "runs again, in its folder")
    storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    first = optuna.load_study(study_name="lr", storage=storage).trials
    assert [t.state for t in first] == [TrialState.FAIL, TrialState.WAITING]  # its retry, with its parameters
    assert first[1].params == first[0].params

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name="lr", storage=storage).trials
    assert [t.state for t in trials[:2]] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == first[0].params and trials[1].user_attrs["run"] == str(study_dir / "trial-000")
    assert json.loads((study_dir / "trial-000" / "trial.json").read_text())["state"] == "complete"
