"""`last.pt` after every epoch, `best.pt` (and its validation predictions) when the metric improves.

Head-only epochs (cached features) take milliseconds and a full checkpoint about 0.3 s to write: they are
checkpointed at most every CHECKPOINT_EVERY_S, after the last epoch and when a hook stops the fit. A crash loses at
most that stretch, which a resume replays exactly; best.pt is held in memory until then (and written on Ctrl-C).
Rank 0 alone writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...core import distributed
from ...records.run_folder import RunDir
from ..epoch import EpochOutcome
from ..state import TrainState, state_dict
from .base import WRITES, Hook

CHECKPOINT_EVERY_S = 30.0


@dataclass
class BestCheckpoint:
    """best.pt's content and the matching validation predictions (ids, labels, logits), until written."""

    checkpoint: dict[str, Any]
    predictions: tuple[list[str], np.ndarray, np.ndarray] | None

    def save(self, run: RunDir) -> None:
        run.save_checkpoint("best", self.checkpoint)
        if self.predictions is not None:
            run.save_val_predictions(*self.predictions)


class Checkpoints(Hook):
    order = WRITES

    def __init__(self, run: RunDir, epochs: int, clock: Callable[[], float] = time.perf_counter):
        self.run, self.epochs, self.clock = run, epochs, clock
        self.pending_best: BestCheckpoint | None = None  # head-only epochs: best.pt not yet written
        self.saved_epoch = -1  # the epoch last.pt holds
        self.checkpointed_at = clock()

    def before_fit(self, state: TrainState) -> None:
        self.saved_epoch = state.epoch - 1
        self.checkpointed_at = self.clock()

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        if not distributed.is_main():
            return
        epoch = outcome.row["epoch"]
        due = self.clock() - self.checkpointed_at >= CHECKPOINT_EVERY_S
        write = not outcome.head_only or epoch == self.epochs - 1 or state.stop is not None or due
        eval_state = state_dict(state.eval_model) if write or outcome.improved else None
        if outcome.improved:
            # kept until written: a copy, since on a CPU the state shares memory with the live weights
            weights = eval_state if write else {k: v.clone() for k, v in eval_state.items()}
            best = {"model": weights, "epoch": epoch, "metric": outcome.row["val_metric"]}
            self.pending_best = BestCheckpoint(best, outcome.predictions)
        if write:
            self._save_best()
            self.checkpointed_at = self.clock()
            self._save_last(state, eval_state)

    def on_interrupt(self, state: TrainState, at_epoch_end: bool) -> None:
        if at_epoch_end and distributed.is_main() and self.saved_epoch < len(state.history) - 1:
            # held back to the end of a head-only epoch: the weights, optimizer and RNG are exactly that epoch's,
            # so it is checkpointed now (when not yet due) and the resume goes on from it
            self._save_last(state, state_dict(state.eval_model))

    def after_fit(self, state: TrainState) -> None:
        if distributed.is_main():
            self._save_best()  # interrupted between head-only checkpoints: the best model still reaches best.pt

    def _save_best(self) -> None:
        if self.pending_best is not None:
            self.pending_best.save(self.run)
            self.pending_best = None

    def _save_last(self, state: TrainState, eval_state) -> None:
        self.run.save_checkpoint("last", state.checkpoint(eval_state), keep_previous=True)
        self.saved_epoch = len(state.history) - 1
