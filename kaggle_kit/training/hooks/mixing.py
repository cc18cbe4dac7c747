"""`--mix-off-epoch E`: mixup/CutMix stop from epoch E on (1-based, as history.csv counts), so the last epochs
fit clean images; the stage itself is `mix.BatchMix`, which `train_one_epoch` applies to every batch."""

from __future__ import annotations

from ...data.mixing import BatchMix
from ...records.run_folder import display_epoch
from ..state import TrainState
from .base import Hook


class MixSwitch(Hook):
    def __init__(self, mix: BatchMix | None, off_epoch: int | None):
        self.mix, self.off_epoch = mix, off_epoch

    def before_epoch(self, state: TrainState) -> None:
        # decided from the epoch alone, so a resumed run mixes exactly the epochs the uninterrupted one did
        if self.mix is not None:
            self.mix.active = self.off_epoch is None or display_epoch(state.epoch) < self.off_epoch
