"""`Hook`: the points of `loop.fit` a variation can act at. Every method does nothing unless overridden."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..epoch import EpochOutcome
    from ..state import TrainState


class Hook:
    def before_fit(self, state: TrainState) -> None:
        """Once, after the state is built (and restored on resume), before the first epoch."""

    def before_epoch(self, state: TrainState) -> None:
        """Before training epoch `state.epoch`."""

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        """After the epoch is trained, validated and recorded in `state.history`. Set `state.stop` to end the
        fit after this epoch (the hooks after this one still run for it)."""

    def on_interrupt(self, state: TrainState, at_epoch_end: bool) -> None:
        """Ctrl-C or SIGTERM ended the loop; `at_epoch_end`: between epochs, so the state is a finished epoch's."""

    def on_error(self, state: TrainState, error: Exception) -> bool:
        """An exception ended the loop; True: this hook turns it into the fit's outcome (it is not re-raised)."""
        return False

    def after_fit(self, state: TrainState) -> None:
        """The loop has ended: finished, stopped, interrupted or out of memory (not on other errors)."""
