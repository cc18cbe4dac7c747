"""`--ema DECAY`: an exponential moving average of the weights (timm's ModelEmaV3, `state.ema`), updated after every
optimizer step; it is the model validated and saved (`state.eval_model`), and last.pt keeps it for a resume."""

from __future__ import annotations

from ..state import TrainState
from .base import CHANGES_TRAINING, Batch, Hook


class EmaUpdate(Hook):
    order = CHANGES_TRAINING

    def after_batch(self, state: TrainState, batch: Batch) -> None:
        if batch.update and state.ema is not None:
            state.ema.update(state.model)
