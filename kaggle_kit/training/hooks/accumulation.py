"""`--accum-steps K`: gradients of K batches summed before one optimizer step (an effective batch K times the batch),
each batch's mean loss divided by K so the step equals one batch K times as large.

An epoch's last group may be shorter: its losses are divided by its own length. No group crosses an epoch's end, so
last.pt (written between epochs) needs no counter. Under DDP the gradients are averaged across ranks once per group:
the loop keeps the gradient of a batch it does not step after local (`no_sync` around its forward and backward: DDP
arms the reduce in the forward, so a `no_sync` around the backward alone would still reduce every batch).
"""

from __future__ import annotations

from ...core import distributed
from ..epoch import EpochOutcome
from ..state import TrainState
from .base import CHANGES_TRAINING, Batch, Hook


class Accumulation(Hook):
    order = CHANGES_TRAINING

    def __init__(self, steps: int, batch_size: int | None = None):
        self.steps, self.batch_size = steps, batch_size  # batch_size: for the row's effective batch

    def before_batch(self, state: TrainState, batch: Batch) -> None:
        first = batch.step - batch.step % self.steps  # the group's first batch
        if batch.batches is None:
            raise TypeError("--accum-steps needs batches of known length: an epoch's last group may be shorter")
        batch.zero_grad = batch.step == first
        batch.update = batch.step + 1 == first + self.steps or batch.step + 1 == batch.batches
        batch.loss_divisor = min(self.steps, batch.batches - first)

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        if self.batch_size:  # images per optimizer step, all ranks together: in last.pt's history and the epoch line
            outcome.row["effective_batch"] = effective_batch(self.batch_size, self.steps)


def effective_batch(batch_size: int, steps: int) -> int:
    return batch_size * steps * distributed.world_size()
