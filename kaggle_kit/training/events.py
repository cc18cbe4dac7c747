"""What the hooks are handed: a training batch (`Batch`) and an epoch's outcome (`EpochOutcome`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: a hook module imports no torch by importing these
    import numpy as np
    import torch


@dataclass
class EpochOutcome:
    """What hooks see after an epoch: its history row and whether it is the best so far."""

    row: dict[str, Any]
    improved: bool
    head_only: bool  # stepped the classifier on cached features (milliseconds an epoch)
    predictions: tuple[list[str], np.ndarray, np.ndarray] | None = None  # (ids, labels, logits) when improved


@dataclass(slots=True)
class Batch:
    """One training batch as the batch hooks see it. `before_batch` may replace `x` and `targets` (mixup does)
    and say how the step treats it; `after_batch` reads the loss and logits."""

    step: int  # 0-based index of the batch in its epoch
    epoch: int  # 0-based
    batches: int | None  # the epoch's number of batches (None when the batches have no length)
    x: torch.Tensor
    y: torch.Tensor  # class indices
    targets: torch.Tensor  # what the loss is computed against: `y`, or probability rows (mixup, CutMix)
    zero_grad: bool = True  # clear the gradients before this batch's backward
    update: bool = True  # step the optimizer after it (else its gradient is summed with the next batches')
    loss_divisor: int = 1  # the backward uses loss / loss_divisor (accumulation: the group's length)
    loss: torch.Tensor | None = None  # the batch's mean loss, undivided (after the forward)
    logits: torch.Tensor | None = None
