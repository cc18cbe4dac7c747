"""`fit(on_epoch=...)`: a function called with each epoch's history row, on every rank."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..epoch import EpochOutcome
from ..state import TrainState
from .base import WRITES, Hook


class OnEpoch(Hook):
    order = WRITES

    def __init__(self, function: Callable[[dict[str, Any]], None] | None):
        self.function = function

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        if self.function:
            self.function(outcome.row)
