"""`--unfreeze-after N`: from epoch N on, the frozen backbone trains too."""

from __future__ import annotations

import torch

from ...config.recipe import Recipe
from ...core import distributed
from ..state import TrainState
from .base import CHANGES_TRAINING, Hook


class Unfreeze(Hook):
    order = CHANGES_TRAINING

    def __init__(self, recipe: Recipe, device: torch.device):
        self.recipe, self.device = recipe, device
        self.frozen = recipe.freeze

    def before_epoch(self, state: TrainState) -> None:
        after = self.recipe.unfreeze_after
        if not self.frozen or after is None or state.epoch < after:
            return
        from ...models import factory as models

        models.set_backbone_frozen(state.model, False)
        self.frozen = False
        if distributed.world_size() > 1:
            # DDP averages the gradients of the parameters that required them when it was built, the head's alone:
            # wrap again so the backbone's are averaged too (and rank 0's weights shared)
            state.train_model = None
            state.train_model = distributed.wrap(state.model, self.device)
            if self.recipe.compile:
                state.train_model = torch.compile(state.train_model)
