"""`tune`'s pruning: each epoch's validation metric reported to an Optuna trial, the fit ended when its pruner
says the trial is hopeless.

The hook stops the fit as early stopping does (`state.stop`, before the writers), so the pruned run's last epoch is
checkpointed and its folder is a finished run like any other; `pruned_at` tells the caller to end the trial as
pruned. `trial` is anything with Optuna's `report(value, step)` and `should_prune()`.
"""

from __future__ import annotations

from ...records.run_folder import display_epoch
from ..epoch import EpochOutcome
from ..state import TrainState
from .base import Hook


class Pruning(Hook):
    recorded = False  # it reports to a live Optuna trial: not a hook a later `train --resume` could create again

    def __init__(self, trial, pruner_name: str):
        self.trial, self.pruner_name = trial, pruner_name
        self.pruned_at: int | None = None  # 0-based epoch the pruner stopped the fit after
        self.pruned_note: str | None = None

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        # a NaN metric (a diverging trial) is reported too: Optuna's pruners prune it
        epoch, value = outcome.row["epoch"], float(outcome.row["val_metric"])
        self.trial.report(value, epoch)
        if state.stop is None and self.trial.should_prune():
            self.pruned_at = epoch
            self.pruned_note = f"pruned by the {self.pruner_name} pruner after epoch {display_epoch(epoch)}"
            state.stop = self.pruned_note
