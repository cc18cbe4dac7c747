"""The user's own hooks (docs/hooks.md): their events and order in a real fit, their state through a SIGKILL and a
resume, and the one-line refusals (a state last.pt could not load, a hook that cannot be made again)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, assert_one_line_error, run_cli_process
from user_hooks import CountBatches, NumpyState

from kaggle_kit.core.errors import KitError
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.training import Hook, load_hook, resume, train
from kaggle_kit.training.hooks.loading import hooks_for_resume

HOOKS_DIR = Path(__file__).resolve().parent
# the child processes import the hooks as `user_hooks:Name`, as config.json records them
ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(HOOKS_DIR)])}
SETTINGS = dict(arch="test_resnet", img_size=32, batch_size=32, workers=0, device="cpu", aug="none", seed=11)


class Recorder(Hook):
    """Every event it hears, with the batch's step and whether its targets are mixed; raises `stop` at `stop_at`
    (epoch, step) to end the fit there."""

    def __init__(self, order=0, stop_at=None, stop=KeyboardInterrupt):
        self.order, self.stop_at, self.stop, self.events = order, stop_at, stop, []

    def before_fit(self, state):
        self.events.append(("before_fit",))

    def before_epoch(self, state):
        self.events.append(("before_epoch", state.epoch))

    def before_batch(self, state, batch):
        self.events.append(("before_batch", batch.step, batch.targets.is_floating_point()))
        if (batch.epoch, batch.step) == self.stop_at:
            raise self.stop("stopped by the hook")

    def after_batch(self, state, batch):
        assert batch.loss is not None and torch.isfinite(batch.loss) and batch.loss.ndim == 0
        self.events.append(("after_batch", batch.step))

    def on_validation(self, state, metric):
        self.events.append(("on_validation", metric))

    def after_epoch(self, state, outcome):
        outcome.row[f"seen_by_{self.order}"] = len(self.events)  # before the writers: saved in last.pt's history
        self.events.append(("after_epoch", state.epoch))

    def on_interrupt(self, state, at_epoch_end):
        self.events.append(("on_interrupt", at_epoch_end))

    def on_error(self, state, error):
        self.events.append(("on_error", str(error)))
        return False

    def after_fit(self, state):
        self.events.append(("after_fit",))


def test_events_run_in_order_among_the_built_ins_and_hear_an_interrupt(tiny_cifar, tmp_path):
    early, user = Recorder(order=-200), Recorder(stop_at=(1, 0))  # before the mixing hook (-100), and after it
    result = train(
        "cifar10", tiny_cifar, out=tmp_path / "run", hooks=[user, early], epochs=3, mixup_alpha=0.4, **SETTINGS
    )
    assert result.interrupted and len(result.history) == 1  # Ctrl-C in epoch 2's first batch
    events = user.events
    steps = sum(event[0] == "after_batch" for event in events)  # epoch 1's batches
    assert steps >= 2
    expected = [("before_fit",), ("before_epoch", 0)]
    for step in range(steps):
        expected += [("before_batch", step, True), ("after_batch", step)]  # mixed: the built-in ran first
    expected += [("on_validation", result.history[0]["val_metric"]), ("after_epoch", 0)]
    expected += [("before_epoch", 1), ("before_batch", 0, True), ("on_interrupt", False), ("after_fit",)]
    assert events == expected
    assert [e[2] for e in early.events if e[0] == "before_batch"] == [False] * (steps + 1)  # before the mixing
    # keys the hooks added to the row reached last.pt (they run before the checkpoint hook)
    saved = RunDir(result.run_dir).load_checkpoint("last")["train_state"]["history"][0]
    assert saved["seen_by_-200"] == saved["seen_by_0"] == 2 * steps + 3
    assert RunDir(result.run_dir).config()["hooks"] == ["test_user_hooks:Recorder", "test_user_hooks:Recorder"]


def test_an_error_reaches_the_hooks_and_is_raised(tiny_cifar, tmp_path):
    hook = Recorder(stop_at=(0, 1), stop=ValueError)
    with pytest.raises(ValueError, match="stopped by the hook"):
        train("cifar10", tiny_cifar, out=tmp_path / "run", hooks=[hook], epochs=2, **SETTINGS)
    assert hook.events[-1] == ("on_error", "stopped by the hook") and ("after_fit",) not in hook.events
    assert not (tmp_path / "run").exists()  # no epoch finished: no folder left


def _start(data, out):
    script = (
        "import sys; from user_hooks import CountBatches; from kaggle_kit.training import train; "
        f"train('cifar10', sys.argv[1], out=sys.argv[2], hooks=[CountBatches()], epochs=3, **{SETTINGS!r})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(data), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV},
    )


def test_a_hook_state_survives_a_sigkill_and_the_resume_recreates_the_hook(tiny_cifar, tmp_path):
    out = tmp_path / "run"
    process = _start(tiny_cifar, out)
    deadline = time.time() + 300
    while not ((out / "history.csv").is_file() and len((out / "history.csv").read_text().splitlines()) > 1):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # inside epoch 2 (or at its end): the count in memory is lost
    process.wait()
    run = RunDir(out)
    killed_at = run.load_checkpoint("last")["epoch"] + 1
    assert killed_at < 3 and run.config()["hooks"] == ["user_hooks:CountBatches"]

    resumed = run_cli_process("train", "--resume", out, "--no-analyze", env=ENV)  # the CLI creates it by name
    assert resumed.returncode == 0, resumed.stderr
    saved = run.load_checkpoint("last")["train_state"]
    per_epoch = [row["batches_seen"] for row in saved["history"]]
    steps = per_epoch[0]
    assert steps > 0 and per_epoch == [steps, 2 * steps, 3 * steps]
    # the resume began at the count last.pt held for the epochs it kept, not at 0 nor at the killed process's count
    assert saved["hooks"]["user_hooks:CountBatches"] == {"batches": 3 * steps, "fits": [0, killed_at * steps]}

    # a hook config.json names that cannot be imported: one line naming it, before any training
    run.update_config(hooks=["gone_module:CountBatches"])
    refused = run_cli_process("train", "--resume", out, env=ENV)
    assert_one_line_error(refused, "hook gone_module:CountBatches", "config.json", "cannot import gone_module")


def test_a_state_last_pt_could_not_load_is_refused_in_one_line(tiny_cifar, tmp_path):
    with pytest.raises(KitError) as refused:
        train("cifar10", tiny_cifar, out=tmp_path / "run", hooks=[NumpyState()], epochs=1, **SETTINGS)
    message = str(refused.value)
    assert "\n" not in message and "hook user_hooks:NumpyState" in message and "a numpy.ndarray" in message
    assert "weights_only=True" in message and not (tmp_path / "run").exists()


def test_hooks_by_name_and_a_resume_with_other_hooks_are_refused(tiny_cifar, tmp_path):
    assert isinstance(load_hook("user_hooks:CountBatches"), CountBatches)
    for spec, needle in [
        ("user_hooks", "give a hook as module:Class"),
        ("no_such_module:Hook", "cannot import no_such_module"),
        ("user_hooks:Missing", "has no Hook subclass Missing"),
        ("helpers:run_cli", "has no Hook subclass run_cli"),
        ("user_hooks:NeedsArguments", "cannot be made without arguments"),
    ]:
        with pytest.raises(KitError, match=needle) as refused:
            load_hook(spec)
        assert str(refused.value).startswith(f"--hook {spec}: ") and "\n" not in str(refused.value)
    out = tmp_path / "run"
    first = train("cifar10", tiny_cifar, out=out, epochs=1, **SETTINGS)
    assert "hooks" not in RunDir(first.run_dir).config()  # no user hook: nothing recorded
    with pytest.raises(KitError, match=r"hook user_hooks:CountBatches was not part of this run .*records: none"):
        resume(out, hooks=[CountBatches()])

    class Live(Hook):
        recorded = False  # as tune's pruning: reports to a live trial, never a setting of the run

    live = Live()  # a retried tune trial resumes its run with its own pruning hook: not refused
    assert hooks_for_resume([], [live], "config.json") == [live]
    made, kept = hooks_for_resume(["user_hooks:CountBatches"], [live], "c")
    assert kept is live and isinstance(made, CountBatches)
