"""`--swa-epochs N`: the weights at the end of each of the last N epochs averaged (stochastic weight averaging),
BatchNorm statistics recomputed over the training images, validated and saved as `swa.pt`.

swa.pt sits beside best.pt, never over it: `predict RUN --checkpoint swa` uses it, and the note at the end gives
both validation figures so the user can pick. The running average (`state.swa`, torch's AveragedModel) is in
last.pt, so a resumed run averages the same epochs as an uninterrupted one. Only a run that trained to its end
(or was stopped early) writes swa.pt: an interrupted one resumes first.
"""

from __future__ import annotations

import sys

import torch

from ...config.recipe import Recipe
from ...core import distributed
from ...records.run_folder import display_epoch
from ..epoch import EpochOutcome, validate
from ..state import TrainState, state_dict
from .base import WRITES, Hook


class WeightAveraging(Hook):
    order = WRITES

    def __init__(self, recipe: Recipe, setup=None):
        self.recipe, self.setup = recipe, setup  # setup: what after_fit validates with (None when driven alone)
        self.first = max(recipe.epochs - (recipe.swa_epochs or 0), 0)  # 0-based: the first epoch averaged

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        if state.swa is not None and state.epoch >= self.first:
            state.swa.update_parameters(state.model)

    def after_fit(self, state: TrainState) -> None:
        finished = state.stop is not None or state.epoch >= self.recipe.epochs
        if state.swa is None or state.interrupted or not finished:
            return
        averaged = int(state.swa.n_averaged)
        if averaged == 0:
            if distributed.is_main():
                print(
                    f"note: no swa.pt: the fit ended before epoch {display_epoch(self.first)}, the first averaged",
                    file=sys.stderr,
                )
            return
        model = state.swa.module
        from ...models import factory as models

        # the copy was made before an unfreeze: its backbone BatchNorm layers follow the trained model's state
        frozen = not any(p.requires_grad for p in models.backbone_parameters(state.model))
        models.set_backbone_frozen(model, frozen)
        if not self.setup.head_only:  # on cached features the backbone (its BatchNorm included) never changed
            recompute_batchnorm(model, self.setup.batches.train(state.epoch - 1))
        metric = self._validate(model)
        if distributed.is_main():
            last = len(state.history) - 1
            checkpoint = {"model": state_dict(model), "epoch": last, "metric": metric, "averaged_epochs": averaged}
            self.setup.run.save_checkpoint("swa", checkpoint)
            print(f"note: {self._note(state, averaged, metric)}", file=sys.stderr, flush=True)

    def _validate(self, model: torch.nn.Module) -> float | None:
        s = self.setup
        if not len(s.data.val_idx):
            return None
        return validate(model, s.batches, s.data, s.comp, s.device, s.dtype, s.channels_last)["val_metric"]

    def _note(self, state: TrainState, averaged: int, metric: float | None) -> str:
        last = len(state.history)
        said = f"swa.pt: weights of epochs {last - averaged + 1}-{last} averaged, BatchNorm statistics recomputed"
        if metric is None:
            return said + "; predict with --checkpoint swa"
        label = self.setup.comp.metric.label
        return (
            f"{said}; val {label} {metric:.4f} (best.pt: {state.best_metric:.4f}, epoch "
            f"{display_epoch(state.best_epoch)}): predict with --checkpoint swa to use it"
        )


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, batches) -> None:
    """BatchNorm running statistics of `model` measured anew over one pass of training batches (batches already
    on the device and normalised): averaged weights match no epoch's statistics. As torch's swa_utils.update_bn,
    but a frozen backbone's layers (kept in eval mode) keep the statistics they have."""
    was_training = model.training
    model.train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]
    momenta = {norm: norm.momentum for norm in norms}
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch, not an exponential one
    if norms:
        for x, _ in batches:
            model(x)
    for norm, momentum in momenta.items():
        norm.momentum = momentum
    model.train(was_training)
