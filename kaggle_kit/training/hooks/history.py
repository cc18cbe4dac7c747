"""history.csv after every epoch, curves.png now and then, and the epoch line a person reads. Rank 0 alone.

Drawing curves.png takes about 0.3 s, longer than a head-only epoch or a fast CIFAR-10 epoch on a GPU: it is
redrawn at most every CURVES_EVERY_S, after the last epoch and when the fit ends early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...competitions.registry import Competition
from ...core import distributed, progress
from ...records.run_folder import RunDir, display_epoch, row_interval
from ..epoch import EpochOutcome
from ..state import TrainState
from .base import WRITES, Hook

CURVES_EVERY_S = 30.0


class History(Hook):
    order = WRITES

    def __init__(self, run: RunDir, comp: Competition, epochs: int, clock: Callable[[], float] = time.perf_counter):
        self.run, self.comp, self.epochs, self.clock = run, comp, epochs, clock
        self.plotted = (0, clock())  # (epochs in curves.png, when drawn)
        self.history_at_start = 0  # epochs the history held when this fit began (a resume's earlier ones)

    def before_fit(self, state: TrainState) -> None:
        self.plotted = (len(state.history), self.clock())
        self.history_at_start = len(state.history)

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        if not distributed.is_main():
            return
        self.run.write_history(state.history)
        last = outcome.row["epoch"] == self.epochs - 1 or state.stop is not None
        if last or self.clock() - self.plotted[1] >= CURVES_EVERY_S:
            self._plot(state)
        progress.say(f"{epoch_line(outcome.row, self.comp)} | {self._eta(state, outcome.row)}")

    def _eta(self, state: TrainState, row: dict[str, Any]) -> str:
        """The epochs left at the mean pace of this fit's epochs so far (a resumed run counts from its resume)."""
        done = len(state.history) - self.history_at_start
        seconds = [r["seconds"] for r in state.history[-done:]] if done > 0 else [row["seconds"]]
        left = max(self.epochs - 1 - row["epoch"], 0)
        return f"{left} epoch(s) left, eta {progress.duration(sum(seconds) / len(seconds) * left)}"

    def after_fit(self, state: TrainState) -> None:
        if distributed.is_main() and self.plotted[0] != len(state.history):
            self._plot(state)  # an interrupted run still leaves curves of every finished epoch

    def _plot(self, state: TrainState) -> None:
        self.run.plot_curves(self.comp.metric.label)
        self.plotted = (len(state.history), self.clock())


def epoch_line(row: dict[str, Any], comp: Competition) -> str:
    mixed = f" ({row['mixed']:.0%} of batches mixed)" if row.get("mixed") else ""
    accumulated = f" | effective batch {row['effective_batch']}" if row.get("effective_batch") else ""
    return (
        f"epoch {display_epoch(row['epoch'])}: lr {row['lr']:.4g} "
        f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}{mixed} | "
        f"val loss {row['val_loss']:.4f} {comp.metric.label} {row_interval(row) or format(row['val_metric'], '.4f')} | "
        f"{row['seconds']:.1f}s {row['images_per_s']:.0f} img/s{accumulated}"
    )
