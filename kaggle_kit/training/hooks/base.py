"""`Hook`: the points of `loop.fit` a variation can act at, for the built-in variations and the user's own alike.

Every method does nothing unless overridden. The loop calls a per-batch method only on the hooks that override
it (`overriding`), so a fit without batch hooks runs the plain loop. Hooks run in one order at every event:
sorted by `order` (lower first), hooks of equal order in the order given; docs/hooks.md lists the built-ins' orders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import Batch, EpochOutcome

if TYPE_CHECKING:
    from ..state import TrainState

# the built-ins' places: those that change what trains (before the user's hooks, order 0), those that decide to
# stop, those that write the run folder (after the user's: the row a hook adds and a stop it sets are saved),
# and the interrupt / out-of-memory handling last
CHANGES_TRAINING = -100
STOPS = -10
USER = 0
WRITES = 100
LAST = 1000


class Hook:
    """Subclass it and override the events you need. `order` places the hook among the others (default 0:
    after the built-ins that change training, before those that write the run folder)."""

    order: int = USER

    def before_fit(self, state: TrainState) -> None:
        """Once, after the state is built (and restored on resume, this hook's state too), before the first epoch."""

    def before_epoch(self, state: TrainState) -> None:
        """Before training epoch `state.epoch`."""

    def before_batch(self, state: TrainState, batch: Batch) -> None:
        """Before the forward of `batch` (on the device)."""

    def after_batch(self, state: TrainState, batch: Batch) -> None:
        """After the backward of `batch` (and the optimizer step, when `batch.update`)."""

    def on_validation(self, state: TrainState, metric: float) -> None:
        """After epoch `state.epoch` is validated: the competition metric (NaN without validation images)."""

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        """After the epoch is trained, validated and recorded in `state.history`. Keys added to `outcome.row`
        reach last.pt and the trackers (hooks ordered before the writers). Set `state.stop` to end the fit after
        this epoch (the hooks after this one still run for it)."""

    def on_interrupt(self, state: TrainState, at_epoch_end: bool) -> None:
        """Ctrl-C or SIGTERM ended the loop; `at_epoch_end`: between epochs, so the state is a finished epoch's."""

    def on_error(self, state: TrainState, error: Exception) -> bool:
        """An exception ended the loop; True: this hook turns it into the fit's outcome (it is not re-raised)."""
        return False

    def after_fit(self, state: TrainState) -> None:
        """The loop has ended: finished, stopped, interrupted or out of memory (not on other errors)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs of this hook: tensors and plain Python values (dict, list, tuple, str, int,
        float, bool, None), saved in last.pt with each epoch, which loads with `weights_only=True`."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """On resume, before `before_fit`: what `state_dict` returned when last.pt was written."""


def overriding(hooks: list[Hook], event: str) -> list[Hook]:
    """The hooks whose class overrides `event`: the per-batch loop calls only these."""
    default = getattr(Hook, event)
    return [hook for hook in hooks if getattr(type(hook), event) is not default]
