"""Hooks of the training loop driven alone (a tiny state, made-up epochs, a fake clock, no training), and early
stopping end to end through the `train` command."""

import pytest
import torch

from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.training.epoch import EpochOutcome
from kaggle_kit.training.hooks.checkpoints import CHECKPOINT_EVERY_S, Checkpoints
from kaggle_kit.training.hooks.early_stopping import EarlyStopping
from kaggle_kit.training.hooks.interrupts import HeldInterrupt, Interrupts
from kaggle_kit.training.state import TrainState


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tiny_state() -> TrainState:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return TrainState(model, model, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=False))


def finish_epoch(state: TrainState, metric: float, head_only: bool = True) -> EpochOutcome:
    """What `run_epoch` leaves: the row recorded, the best updated (higher is better here)."""
    row = {
        "epoch": state.epoch,
        "lr": 0.1,
        "train_loss": 1.0,
        "train_accuracy": 0.5,
        "val_loss": 1.0,
        "val_accuracy": 0.5,
        "val_metric": metric,
        "seconds": 0.01,
        "images_per_s": 100.0,
    }
    improved = state.best_metric is None or metric > state.best_metric
    state.record(row, improved)
    return EpochOutcome(row, improved, head_only)


def run_epochs(state, hooks, metrics, clock=None, seconds_each=1.0, head_only=True):
    for metric in metrics:
        for hook in hooks:
            hook.before_epoch(state)
        outcome = finish_epoch(state, metric, head_only)
        if clock:
            clock.now += seconds_each
        for hook in hooks:
            hook.after_epoch(state, outcome)
        state.epoch += 1


def test_head_only_epochs_are_checkpointed_every_interval_and_the_last(tmp_path):
    clock, run, state = FakeClock(), RunDir(tmp_path), tiny_state()
    epochs = 10
    hook = Checkpoints(run, epochs, clock=clock)
    hook.before_fit(state)
    run_epochs(state, [hook], [0.1, 0.2, 0.3], clock, seconds_each=1.0)
    assert not run.has_checkpoint("last") and not run.has_checkpoint("best")  # not yet due: held in memory
    run_epochs(state, [hook], [0.25], clock, seconds_each=CHECKPOINT_EVERY_S)  # due now
    assert run.load_checkpoint("last")["epoch"] == 3
    assert run.load_checkpoint("best")["epoch"] == 2  # the held-back best, written with it
    run_epochs(state, [hook], [0.1] * 5, clock)
    assert run.load_checkpoint("last")["epoch"] == 3
    run_epochs(state, [hook], [0.1], clock)  # the last epoch is always written
    last = run.load_checkpoint("last")
    assert last["epoch"] == epochs - 1 and last["train_state"]["best_epoch"] == 2
    assert len(last["train_state"]["history"]) == epochs


def test_images_epochs_are_checkpointed_every_epoch(tmp_path):
    run, state = RunDir(tmp_path), tiny_state()
    hook = Checkpoints(run, 5, clock=FakeClock())
    hook.before_fit(state)
    for epoch, metric in enumerate([0.3, 0.2]):
        run_epochs(state, [hook], [metric], head_only=False)
        assert run.load_checkpoint("last")["epoch"] == epoch
    assert run.load_checkpoint("best")["epoch"] == 0


def test_a_stop_at_an_epoch_end_saves_that_epoch_and_the_held_best(tmp_path):
    run, state = RunDir(tmp_path), tiny_state()
    hook = Checkpoints(run, 10, clock=FakeClock())
    hook.before_fit(state)
    run_epochs(state, [hook], [0.5, 0.4])
    hook.on_interrupt(state, at_epoch_end=False)  # mid-epoch: the weights are no finished epoch's
    assert not run.has_checkpoint("last")
    hook.on_interrupt(state, at_epoch_end=True)
    hook.after_fit(state)
    assert run.load_checkpoint("last")["epoch"] == 1 and run.load_checkpoint("best")["epoch"] == 0


def test_a_hook_stopping_the_fit_makes_the_checkpoint_due(tmp_path):
    run, state = RunDir(tmp_path), tiny_state()
    hooks = [EarlyStopping(patience=2), Checkpoints(run, 10, clock=FakeClock())]
    for hook in hooks:
        hook.before_fit(state)
    run_epochs(state, hooks, [0.5, 0.6, 0.4])
    assert state.stop is None
    run_epochs(state, hooks, [0.55])
    assert state.stop == "early stop at epoch 4: no better val metric for 2 epochs; best epoch 2"
    assert run.load_checkpoint("last")["epoch"] == 3 and run.load_checkpoint("best")["epoch"] == 1


def test_early_stopping_off_or_resumed_after_its_stop():
    state = tiny_state()
    off = EarlyStopping(patience=None)
    run_epochs(state, [off], [0.5] + [0.1] * 6)
    assert state.stop is None
    resumed = tiny_state()
    resumed.history, resumed.best_epoch, resumed.best_metric = state.history, 0, 0.5
    EarlyStopping(patience=3).before_fit(resumed)
    assert resumed.stop is not None and "best epoch 1" in resumed.stop


def test_held_signals_are_raised_at_the_epoch_end_and_handlers_restored():
    import os
    import signal

    before = signal.getsignal(signal.SIGINT)
    state, hook = tiny_state(), Interrupts(hold=True)
    hook.before_epoch(state)
    os.kill(os.getpid(), signal.SIGINT)  # held: no KeyboardInterrupt here
    with pytest.raises(HeldInterrupt):
        hook.after_epoch(state, finish_epoch(state, 0.1))
    assert signal.getsignal(signal.SIGINT) is before


def test_early_stopping_through_the_cli_finishes_the_run_and_its_resume_trains_no_more(tiny_cifar, tmp_path):
    import re

    import pandas as pd
    from helpers import TINY_CPU_ARGS, assert_one_line_error, run_cli

    from kaggle_kit.submissions.provenance import run_summary

    out = tmp_path / "run"
    # a frozen backbone (its BatchNorm statistics too) and an lr this small leave every prediction, so the accuracy,
    # as the first epoch made it: no later epoch is better
    args = [
        *TINY_CPU_ARGS,
        "--lr",
        "1e-7",
        "--schedule",
        "constant",
        "--epochs",
        "6",
        "--freeze",
        "--no-analyze",  # the stop is read from the history, the checkpoint and the messages
    ]
    stopped = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--out", out, *args, "--early-stop-patience", "2")
    assert stopped.returncode == 0, stopped.stderr
    note = re.search(
        r"note: early stop at epoch (\d+): no better val metric for 2 epochs; best epoch (\d+)", stopped.stderr
    )
    assert note, stopped.stderr
    ran, best = int(note.group(1)), int(note.group(2))
    assert ran == best + 2 and ran < 6 and f"trained {ran} epochs" in stopped.stdout
    assert len(pd.read_csv(out / "history.csv")) == ran
    assert RunDir(out).load_checkpoint("last")["epoch"] == ran - 1  # the stop is checkpointed: the run is finished

    resumed = run_cli("train", "--resume", out, "--no-analyze")
    assert resumed.returncode == 0, resumed.stderr
    assert note.group(0) in resumed.stderr and f"trained {ran} epochs" in resumed.stdout
    assert len(pd.read_csv(out / "history.csv")) == ran
    # `runs` counts it finished (a fold group's row counted early-stopped folds as unfinished, beside its cv.json)
    assert run_summary(out, {})["finished"]

    refused = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        tiny_cifar,
        "--out",
        tmp_path / "bad",
        *args,
        "--early-stop-patience",
        "0",
    )
    assert_one_line_error(refused, "invalid setting early_stop_patience=0", "give 1 or more epochs")
    assert "--early-stop-patience" in run_cli("train", "--help").stdout
