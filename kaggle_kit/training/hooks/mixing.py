"""Mixup and CutMix on every training batch (`data.mixing.BatchMix`), and `--mix-off-epoch E`: no mixing from
epoch E on (1-based, as history.csv counts), so the last epochs fit clean images."""

from __future__ import annotations

from ...config.recipe import Recipe
from ...data.mixing import BatchMix
from ...records.run_folder import display_epoch
from ..epoch import EpochOutcome
from ..state import TrainState
from .base import CHANGES_TRAINING, Batch, Hook


class MixBatches(Hook):
    order = CHANGES_TRAINING

    def __init__(self, mix: BatchMix, off_epoch: int | None):
        self.mix, self.off_epoch = mix, off_epoch
        self.mixed = self.batches = 0  # this epoch's

    @classmethod
    def of(cls, recipe: Recipe, classes: int) -> MixBatches | None:
        if recipe.mixup_alpha <= 0 and recipe.cutmix_alpha <= 0:
            return None
        mix = BatchMix(recipe.mixup_alpha, recipe.cutmix_alpha, recipe.mix_prob, classes, recipe.label_smoothing)
        return cls(mix, recipe.mix_off_epoch)

    def before_epoch(self, state: TrainState) -> None:
        # decided from the epoch alone, so a resumed run mixes exactly the epochs the uninterrupted one did
        self.mix.active = self.off_epoch is None or display_epoch(state.epoch) < self.off_epoch
        self.mixed = self.batches = 0

    def before_batch(self, state: TrainState, batch: Batch) -> None:
        batch.x, batch.targets = self.mix(batch.x, batch.y)  # soft targets when the batch is mixed
        self.mixed += batch.targets.is_floating_point()
        self.batches += 1

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        # kept in last.pt's history (not history.csv): which epochs mixup/CutMix touched, and how much
        outcome.row["mixed"] = self.mixed / max(self.batches, 1)
