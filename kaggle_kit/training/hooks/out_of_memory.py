"""Out of memory: the finished epochs stay saved, and one line (not a traceback) says what to change."""

from __future__ import annotations

import torch

from ...config.recipe import Recipe
from ...core.errors import KitError, out_of_memory
from ...records.run_folder import RunDir
from ..state import TrainState
from .base import LAST, Hook


class OutOfMemory(Hook):
    order = LAST

    def __init__(self, recipe: Recipe, device: torch.device, run: RunDir):
        self.recipe, self.device, self.run = recipe, device, run
        self.message: str | None = None

    def on_error(self, state: TrainState, error: Exception) -> bool:
        memory = out_of_memory(error)
        if memory is not None:
            self.message = out_of_memory_message(
                memory, self.device, self.recipe, state.epoch, len(state.history), self.run
            )
        return memory is not None

    def after_fit(self, state: TrainState) -> None:
        if self.message:
            raise KitError(self.message, exit_code=1)


def out_of_memory_message(memory: str, device, recipe: Recipe, epoch: int, finished: int, run: RunDir) -> str:
    unfrozen_now = recipe.freeze and recipe.unfreeze_after is not None and epoch == recipe.unfreeze_after
    why = (
        " (the backbone was unfrozen this epoch: its gradients and activations need memory too)" if unfrozen_now else ""
    )
    # a run with no finished epoch is removed by `train`; one with finished epochs keeps them in its folder
    kept = f" and another --out; the {finished} finished epoch(s) stay in {run.path}" if finished else ""
    return (
        f"{memory} on {device} in epoch {epoch + 1} at batch size {recipe.batch_size}{why}: train again with a "
        f"lower --batch-size (or --img-size){', or --unfreeze-after none' if unfrozen_now else ''}{kept}"
    )
