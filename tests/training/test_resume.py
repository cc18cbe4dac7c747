"""Resume after SIGKILL at any moment, after a torn checkpoint, and after Ctrl-C: the resumed run ends
exactly where an uninterrupted run with the same seed ends."""

import json
import os
import shutil
import signal
import time

import pandas as pd
import pytest
import torch
from fault_sweep import zygote
from helpers import REPO, run_cli

from kaggle_kit.records.run_folder import RunDir

ARGS = [
    "--epochs",
    "3",
    "--arch",
    "test_resnet",
    "--batch-size",
    "32",
    "--lr",
    "0.05",
    "--aug",
    "modern",
    "--workers",
    "0",
    "--seed",
    "11",
    "--device",
    "cpu",
]


# the runs compared here end in their weights and history: the error-analysis pictures at the end are not
# compared, so the commands in this process skip them (tests/inference/test_analysis.py and cifar_run cover them)
NO_PICTURES = "--no-analyze"


def _train(data, out, *extra):
    result = run_cli("train", "cifar10", "--data-dir", data, "--out", out, *ARGS, NO_PICTURES, *extra)
    assert result.returncode == 0, result.stderr
    return result


def _start(data, out):
    """`kaggle-kit train` in a process of its own, forked from the worker's zygote (no torch import of its own)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["train", "cifar10", "--data-dir", data, "--out", out, *ARGS]
    return zygote().launch(out.parent, env, args)


def _wait_for_epochs(out, n, child, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = out / "history.csv"
        if history.is_file() and len(history.read_text().strip().splitlines()) > n:
            return
        assert child.running(), child.said(child.stderr)
        time.sleep(0.05)
    raise AssertionError("training did not reach the epoch in time")


def _kill_after_epochs(data, out, n):
    """Start a run and SIGKILL it once `n` epochs are in its history."""
    with _start(data, out) as child:
        _wait_for_epochs(out, n, child)
        child.kill()
        child.wait()


def _resume(out):
    result = run_cli("train", "--resume", out, NO_PICTURES)
    assert result.returncode == 0, result.stderr
    return result


def _final(out):
    run = RunDir(out)
    return run.history(), run.load_checkpoint("last")["model"]


def _same_run(a, b):
    history_a, weights_a = _final(a)
    history_b, weights_b = _final(b)
    columns = ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_metric"]
    pd.testing.assert_frame_equal(history_a[columns], history_b[columns])
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.fixture(scope="module")
def uninterrupted(sample_zips, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    _train(sample_zips["cifar10"], out)
    return out


@pytest.fixture(scope="module")
def killed(sample_zips, tmp_path_factory):
    """A run SIGKILLed once two of its three epochs are in its history (so last.pt and last.prev.pt are both on
    disk): read-only; each test breaks and resumes its own copy."""
    out = tmp_path_factory.mktemp("resume") / "killed"
    _kill_after_epochs(sample_zips["cifar10"], out, 2)
    return out


def test_sigkill_then_resume_matches_an_uninterrupted_run(killed, uninterrupted, tmp_path):
    out = shutil.copytree(killed, tmp_path / "killed")
    assert len(RunDir(out).history()) < 3
    # as a version that counted history.csv's epochs from 0 left it: the resume goes on and writes them from 1
    written = pd.read_csv(out / "history.csv")
    written.assign(epoch=written["epoch"] - 1).to_csv(out / "history.csv", index=False)
    _resume(out)
    _same_run(uninterrupted, out)
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2, 3]


def test_torn_checkpoint_falls_back_to_the_previous_one(killed, uninterrupted, tmp_path):
    out = shutil.copytree(killed, tmp_path / "torn")
    last = out / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a crash mid-write on a disk without rename
    result = _resume(out)
    assert "last.pt is damaged" in result.stderr and "last.prev.pt" in result.stderr
    _same_run(uninterrupted, out)


def test_ctrl_c_saves_and_prints_the_resume_command(sample_zips, uninterrupted, tmp_path):
    out = tmp_path / "interrupted"
    with _start(sample_zips["cifar10"], out) as child:
        _wait_for_epochs(out, 1, child)
        child.send_signal(signal.SIGINT)
        stopped = child.wait(timeout=120, raise_on_timeout=True)
    stderr = stopped.stderr
    assert stopped.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"kaggle-kit train --resume {out}" in stderr
    assert RunDir(out).has_checkpoint("last")
    _resume(out)
    _same_run(uninterrupted, out)


def test_resuming_a_finished_run_changes_nothing(uninterrupted):
    """The same resume again after one killed once it had written everything: the run is whole, so it says so and
    succeeds (a script that reruns a killed command goes on), and no file of the run is written."""
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in uninterrupted.iterdir() if p.is_file()}
    result = run_cli("train", "--resume", uninterrupted)
    assert result.returncode == 0, result.stderr
    assert f"{uninterrupted} already finished its 3 epochs: nothing to resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in uninterrupted.iterdir() if p.is_file()} == files


def test_a_run_from_before_the_settled_sizes_resumes_exactly(killed, uninterrupted, tmp_path):
    """config.json of a version that derived the cache side, augmentation scale and validation batch wherever they
    were used (none of them stored, eval_resize left unset): the resume settles them to the same values."""
    out = shutil.copytree(killed, tmp_path / "old")
    config = json.loads((out / "config.json").read_text())
    for name in ("cache_side", "aug_scale", "val_batch_size"):
        del config["recipe"][name]
        config["derived"].pop(name, None)
    config["recipe"]["eval_resize"] = None
    config["derived"].pop("eval_resize", None)
    (out / "config.json").write_text(json.dumps(config))
    _resume(out)
    _same_run(uninterrupted, out)
    assert RunDir(out).read_config().recipe.val_batch_size is None  # the file is the run's, not rewritten
