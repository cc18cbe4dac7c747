"""Everything a fit trains with, built once before the first epoch: `prepare` -> (Setup, TrainState)."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from ..competitions.registry import Competition
from ..competitions.resolution import Resolution, augmentation_for, settle
from ..competitions.targets import TargetKind, target_of
from ..config.recipe import Recipe
from ..core import distributed, invocation, progress
from ..core.errors import KitError
from ..data.batches import Batches, Data, prepare_data
from ..data.datasets import seed_everything
from ..data.layout import Layout
from ..data.training_images import TrainingImages
from ..records.run_folder import RunDir, git_commit, versions
from .device import autocast_dtype, resolve_device, set_backend_flags, use_channels_last
from .schedules import build_scheduler
from .state import TrainState


@dataclass
class Setup:
    """What stays fixed for the whole fit: the competition, data, device and precision."""

    comp: Competition
    layout: Layout
    recipe: Recipe
    run: RunDir
    data: Data
    batches: Batches
    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    steps_per_epoch: int  # batches; the optimizer steps once per recipe.accum_steps of them (updates_per_epoch)

    @property
    def updates_per_epoch(self) -> int:
        return -(-self.steps_per_epoch // self.recipe.accum_steps)

    @property
    def head_only(self) -> bool:
        return self.batches.features is not None


def prepare(
    comp: Competition,
    layout: Layout,
    recipe: Recipe,
    run: RunDir,
    resume: bool,
    resolution: Resolution | None,
    images: TrainingImages | None = None,
) -> tuple[Setup, TrainState]:
    """Check the recipe, read the data, build the model and its optimizer; with `resume`, load `last.pt` (and the
    run's own choice of images, whatever `images` says). `images`: the fold's validation images and the
    pseudo-labelled test images, where the command chose them; None: the labelled images, a seeded split."""
    from ..models import factory as models
    from ..records import pseudo_labels
    from . import features

    if resolution is None:  # a resumed run or a recipe given to fit directly: train's request was checked already
        recipe = settle(comp, recipe.validate())
    features.check_recipe(recipe)
    device = resolve_device(recipe.device)
    if recipe.sync_bn and distributed.world_size() > 1 and device.type != "cuda":
        raise KitError(
            f"--sync-bn needs CUDA GPUs (torch's SyncBatchNorm has no {device.type} kernel); "
            f"drop --sync-bn for --device {device.type}"
        )
    seed_everything(recipe.seed)
    set_backend_flags(device)

    checkpoint = run.load_checkpoint("last") if resume and run.has_checkpoint("last") else None
    if distributed.is_main():
        run.ensure()
    distributed.barrier()
    images = TrainingImages.of_run(run, layout.classes) if resume else images or TrainingImages()
    data = prepare_data(layout, recipe, run, resume, images)
    target = target_of(comp)
    _check_target_recipe(target, recipe)
    width = _tabular_columns(layout, recipe, run, resume, images, data)
    model = models.build_model(recipe, target.head_size(layout.classes), width)
    mean, std = input_normalization(comp, recipe, model)
    if distributed.is_main() and not resume:
        derivation = resolution.record() if resolution else {}
        extra = {"skipped_images": data.train_cache.bad_ids, **derivation}
        if images.pseudo is not None:  # the set first, so config.json never names a file that is not there
            pseudo_labels.save(run, images.pseudo)
            extra["pseudo_labels"] = images.pseudo.record()
        run.create(run_config(comp, layout, recipe, (mean, std), extra))
    model, channels_last = place_model(model, recipe, device)

    batches = Batches(data, comp, recipe, device, mean, std)
    if distributed.is_main():
        # the resolved choice behind `gpu_data` auto, for the user now and for whoever compares runs later
        data_path = batches.describe()
        progress.say(f"data: {data_path}")
        run.update_config(data_path=data_path)
    dtype = autocast_dtype(device, recipe)
    setup = Setup(comp, layout, recipe, run, data, batches, device, dtype, channels_last, steps_per_epoch=0)
    _feature_cache(setup, model, (mean, std))
    setup.steps_per_epoch = max(len(batches.train(0)), 1)
    return setup, _train_state(setup, model, checkpoint)


def _tabular_columns(layout: Layout, recipe: Recipe, run: RunDir, resume: bool, images, data: Data) -> int:
    """The declared tabular columns, encoded on the training split (the run's own encoding on resume) and joined to
    `data`; returns their width (0: none declared, today's image-only model)."""
    from ..data import tabular

    if not layout.competition.features or not recipe.tabular:
        return 0
    tabular.check_tabular_recipe(recipe, images.pseudo is not None, layout.competition.name)
    rows, encoding = tabular.train_features(layout, run, resume, data.ids, data.train_idx, distributed.is_main())
    data.features = rows
    if distributed.is_main():
        progress.say(f"tabular columns: {encoding.describe()}, encoded on the {len(data.train_idx)} training images")
    return encoding.width


def _check_target_recipe(target: TargetKind, recipe: Recipe) -> None:
    """Levers written for one label per image that a label set, value or grade cannot take, refused by name."""
    if target.name == "label":
        return
    levers = {"--mixup": recipe.mixup_alpha > 0, "--cutmix": recipe.cutmix_alpha > 0}
    levers["--label-smoothing"] = recipe.label_smoothing > 0
    used = [flag for flag, on in levers.items() if on]
    if used:
        raise KitError(f"{used[0]} mixes or smooths class labels: a {target.name} target cannot take it; drop it")


def place_model(model: torch.nn.Module, recipe: Recipe, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """The model as it trains: synced BatchNorm under DDP, frozen backbone, on the device, in its memory format."""
    from ..models import factory as models

    if recipe.sync_bn and distributed.world_size() > 1:
        # before freezing: conversion builds new norm layers, which would drop the frozen layers' eval-mode pin
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if recipe.freeze:
        models.set_backbone_frozen(model, True)
    model.to(device)
    channels_last = use_channels_last(recipe, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, channels_last


def _feature_cache(setup: Setup, model: torch.nn.Module, normalization) -> None:
    """Where the recipe asks for it, turn the batches into cached backbone features (head-only epochs)."""
    from . import features

    if not features.wanted(setup.recipe):
        return
    if distributed.world_size() > 1:
        progress.say("feature cache off under DDP: every rank trains the frozen model on images")
        return
    # the data-level branch: from here on batches are cached backbone features, steps train the head
    data, layout, batches = setup.data, setup.layout, setup.batches
    batches.features = features.prepare(
        model,
        batches.view_batches,
        recipe=setup.recipe,
        spec=augmentation_for(setup.comp, setup.recipe),
        normalization=normalization,
        labels=data.labels,
        train_idx=data.train_idx,
        val_idx=data.val_idx,
        data_fingerprint=f"{layout.fingerprint()}/{data.train_cache.path.name}",
        work_dir=layout.work_dir,
        device=setup.device,
        dtype=setup.dtype,
        channels_last=setup.channels_last,
        pipeline="gpu" if batches.use_gpu_data else "albumentations",
    )


def _train_state(setup: Setup, model: torch.nn.Module, checkpoint: dict[str, Any] | None) -> TrainState:
    recipe, device = setup.recipe, setup.device
    optimizer = build_optimizer(model, recipe, device)
    scheduler = build_scheduler(optimizer, recipe, setup.updates_per_epoch)  # the schedule moves per update
    scaler = torch.amp.GradScaler("cuda", enabled=setup.dtype == torch.float16)
    ema = None
    if recipe.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema, device=device)
    state = TrainState(model, model, optimizer, scheduler, scaler, ema)
    if recipe.swa_epochs:
        from torch.optim.swa_utils import AveragedModel

        state.swa = AveragedModel(model)
    if checkpoint is not None:
        state.restore(checkpoint, setup.updates_per_epoch)
        if distributed.is_main():
            setup.run.write_history(state.history)
    state.train_model = distributed.wrap(model, device)
    if recipe.compile:
        state.train_model = torch.compile(state.train_model)
    return state


def build_optimizer(model: torch.nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    if recipe.layer_decay is not None:
        groups = layer_decay_groups(model, recipe)
    else:
        decay, no_decay = [], []
        for param in model.parameters():
            # biases and norm weights are not decayed: standard for ResNets, harmless for the study's settings
            (no_decay if param.ndim <= 1 else decay).append(param)
        groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if device.type == "cuda" else {}
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr, **fused)
    nesterov = recipe.nesterov and recipe.momentum > 0
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=nesterov, **fused)


def layer_decay_groups(model: torch.nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    """`--layer-decay D`: timm's layer-wise groups (its group_matcher: stem, each stage, head); the head trains
    at --lr, each layer below at D times the rate above it. Each group's lr is set here, so the schedule scales
    them all alike (LambdaLR keeps each group's own base). timm skips parameters that need no gradient: a frozen
    backbone is grouped as if trainable, so when the unfreeze hook lets it train its parameters are already in
    the optimizer at their decayed rates."""
    from timm.optim import param_groups_layer_decay

    trainable = {param: param.requires_grad for param in model.parameters()}
    for param in trainable:
        param.requires_grad_(True)
    try:
        groups = param_groups_layer_decay(model, weight_decay=recipe.weight_decay, layer_decay=recipe.layer_decay)
    finally:
        for param, flag in trainable.items():
            param.requires_grad_(flag)
    for group in groups:
        group["lr"] = recipe.lr * group["lr_scale"]
    return groups


def check_normalization(comp: Competition, recipe: Recipe) -> None:
    if recipe.normalize == "dataset" and comp.dataset_mean_std is None:
        raise KitError(f"--normalize dataset: {comp.name} declares no dataset mean/std; use --normalize model")


def input_normalization(comp: Competition, recipe: Recipe, model: torch.nn.Module):
    """(mean, std) the run normalises its images with: the model's (its weights expect them) or the
    competition's declared dataset statistics."""
    from ..models import factory as models

    if recipe.normalize == "model":
        return models.normalization(model)
    check_normalization(comp, recipe)
    mean, std = comp.dataset_mean_std
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def run_config(
    comp: Competition, layout: Layout, recipe: Recipe, normalization, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "competition": comp.name,
        "slug": comp.slug,
        "metric": comp.metric.name,
        "higher_is_better": comp.metric.higher_is_better,
        "recipe": recipe.to_dict(),
        "augment": dataclasses.asdict(augmentation_for(comp, recipe)),
        "classes": layout.classes,
        "data_dir": str(layout.root.resolve()),
        "fingerprint": layout.fingerprint(),
        "versions": versions(),
        "git": git_commit(),
        "command": invocation.command(),
        "normalization": {"mean": list(normalization[0]), "std": list(normalization[1])},
        "effective_batch": recipe.batch_size * recipe.accum_steps * distributed.world_size(),  # per optimizer step
        "processes": distributed.world_size(),  # the ranks that trained it (--nproc); a resume may change it
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }


def say_notes(recipe: Recipe, resolution: Resolution | None) -> None:
    """Said once the run is sure to start: a failing one prints its error alone."""
    if not distributed.is_main():
        return
    for note in (resolution.notes if resolution else []) + recipe.notes():
        print(f"note: {note}", file=sys.stderr, flush=True)
    for warning in resolution.warnings if resolution else []:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
