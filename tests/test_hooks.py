"""Hooks of the training loop driven alone: a tiny state, made-up epochs, a fake clock, no training."""

import pytest
import torch

from kaggle_kit.run import RunDir
from kaggle_kit.train.epoch import EpochOutcome
from kaggle_kit.train.hooks.checkpoints import CHECKPOINT_EVERY_S, Checkpoints
from kaggle_kit.train.hooks.interrupts import HeldInterrupt, Interrupts
from kaggle_kit.train.state import TrainState


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
    row = {"epoch": state.epoch, "lr": 0.1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0,
           "val_accuracy": 0.5, "val_metric": metric, "seconds": 0.01, "images_per_s": 100.0}
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