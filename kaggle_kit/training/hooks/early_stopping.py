"""`--early-stop-patience P`: end the fit once P epochs in a row brought no better validation metric.

The stopped run counts as finished: its last epoch is checkpointed (state.stop makes the writers write), and a
resume of it finds the same stall in its history and trains nothing more.
"""

from __future__ import annotations

import sys

from ...core import distributed
from ...records.run_folder import display_epoch
from ..epoch import EpochOutcome
from ..state import TrainState
from .base import STOPS, Hook


class EarlyStopping(Hook):
    order = STOPS

    def __init__(self, patience: int | None):
        self.patience = patience

    def before_fit(self, state: TrainState) -> None:
        if self._stalled(state):  # a resumed run that already stopped
            state.stop = self._note(state)

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        if state.stop is None and self._stalled(state):
            state.stop = self._note(state)

    def after_fit(self, state: TrainState) -> None:
        if state.stop is not None and distributed.is_main() and self._stalled(state):
            print(f"note: {state.stop}", file=sys.stderr, flush=True)

    def _stalled(self, state: TrainState) -> bool:
        # every rank holds the same history (validation is gathered), so all stop at the same epoch
        return self.patience is not None and len(state.history) > 0 and self._since_best(state) >= self.patience

    def _since_best(self, state: TrainState) -> int:
        best = -1 if state.best_epoch is None else state.best_epoch
        return len(state.history) - 1 - best

    def _note(self, state: TrainState) -> str:
        best = "none" if state.best_epoch is None else display_epoch(state.best_epoch)
        return (
            f"early stop at epoch {display_epoch(len(state.history) - 1)}: no better val metric for "
            f"{self._since_best(state)} epochs; best epoch {best}"
        )
