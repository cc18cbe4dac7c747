"""Learning-rate schedules as one pure function of the fractional epoch, wrapped in a torch scheduler.

`lr_factor(recipe, epoch)` is the multiplier of the base lr at a (fractional) epoch: the trainer steps
the scheduler every batch, so warmup and cosine are smooth while `step` keeps StepLR's per-epoch
staircase. A pure function makes every curve testable and every resume exact.
"""

from __future__ import annotations

import math

import torch

from ..config.recipe import Recipe


def lr_factor(recipe: Recipe, epoch: float) -> float:
    total = recipe.epochs
    warm = recipe.warmup_length()
    if recipe.schedule == "onecycle":
        # triangular: up from 0 to the peak over the warmup (default 30% of training), then down to 0
        peak = warm if warm > 0 else 0.3 * total
        if epoch < peak:
            return max(epoch / peak, 1e-3)
        return max((total - epoch) / max(total - peak, 1e-9), 0.0)
    if recipe.schedule == "constant":
        factor = 1.0
    elif recipe.schedule == "step":
        factor = recipe.step_gamma ** math.floor(epoch / recipe.step_period)
    elif recipe.schedule == "cosine":
        span = max(total - warm, 1e-9)
        progress = min(max((epoch - warm) / span, 0.0), 1.0)
        factor = 0.5 * (1 + math.cos(math.pi * progress))
    else:
        raise ValueError(recipe.schedule)
    if warm > 0 and epoch < warm:
        factor *= max(epoch / warm, 1e-3)
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-batch scheduler following `lr_factor`; step k of training is epoch k / steps_per_epoch."""
    steps = max(steps_per_epoch, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(recipe, step / steps))
