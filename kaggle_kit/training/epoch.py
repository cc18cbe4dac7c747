"""One epoch: train it, evaluate a model, validate with the competition's metric."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sized
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..competitions.bootstrap import bootstrap_interval
from ..competitions.registry import Competition
from ..competitions.targets import TargetKind, target_of
from ..config.recipe import Recipe
from ..core import distributed
from ..core.errors import KitError
from ..data.batches import Batches, Data
from ..data.datasets import epoch_seed, seed_everything
from ..data.mixing import batch_loss
from ..models.tabular import forward
from ..records.run_folder import display_epoch
from .device import to_device
from .events import Batch, EpochOutcome
from .hooks.base import overriding

# Divergence is checked on the device and read back every this many steps: reading the loss every step would make
# the host wait for the GPU each step and stall the launch queue.
DIVERGENCE_CHECK_STEPS = 25
EPOCH_RESAMPLES = 200


def run_epoch(setup, state, bar, hooks=()) -> EpochOutcome:
    """Train `state` for epoch `state.epoch`, validate it and record the row in its history."""
    epoch = state.epoch
    # head-only epochs: the batches are cached features, so the models stepped and evaluated are the classifiers;
    # they share their parameters with `state.model`, which checkpoints save whole
    head_only = setup.head_only
    step_model = state.model.get_classifier() if head_only else state.train_model
    val_model = state.eval_model.get_classifier() if head_only else state.eval_model
    placement = (setup.device, setup.dtype, setup.channels_last)
    target = target_of(setup.comp)
    row = train_one_epoch(
        state, setup.batches.train(epoch), placement, setup.recipe, bar, hooks, step_model, target, setup.batches.join
    )
    result = None
    if len(setup.data.val_idx):
        distributed.broadcast_buffers(val_model)  # one model: rank 0's, the one its checkpoint saves
        result = validate(val_model, setup.batches, setup.data, setup.comp, *placement)
        row.update({k: v for k, v in result.items() if k.startswith("val_")})
    else:
        row.update(val_loss=float("nan"), val_accuracy=float("nan"), val_metric=float("nan"))
    for hook in overriding(hooks, "on_validation"):
        hook.on_validation(state, row["val_metric"])
    # without validation images every epoch counts as the best: the last one is the model to use
    improved = setup.comp.metric.better(row["val_metric"], state.best_metric) or (result is None)
    state.record(row, improved)
    predictions = None
    if improved and result is not None:
        indices = result["indices"]
        predictions = ([setup.data.ids[i] for i in indices], setup.data.labels[indices], result["logits"])
    return EpochOutcome(row, improved, head_only, predictions)


def train_one_epoch(
    state,
    batches,
    placement,
    recipe: Recipe,
    bar,
    hooks=(),
    step_model=None,
    target: TargetKind | None = None,
    join=None,
) -> dict[str, Any]:
    """Train `state` (its model, optimizer, schedule, scaler) for epoch `state.epoch` over `batches`; `placement`:
    (device, autocast dtype or None, channels_last). `step_model`: what steps, when not `state.train_model` (a
    head-only epoch's classifier). Every variation of a batch's step is a hook's (accumulation, mixup, EMA).
    `target`: the competition's target kind, whose loss a label set, value or grade trains with. `join`: how the
    batches' rows split into truth and tabular columns (data/tabular.FeatureJoin; None: no tabular columns)."""
    device, dtype, channels_last = placement
    epoch, optimizer = state.epoch, state.optimizer
    train_model = step_model if step_model is not None else state.train_model
    # a pure function of (seed, epoch): dropout and worker-free augmentation replay exactly on resume
    # plus the rank: each rank's dropout and GPU-side augmentation draw differ (rank 0 draws as a single process)
    seed_everything(epoch_seed(recipe.seed, epoch, salt=1) + distributed.rank())
    train_model.train()  # frozen backbone BatchNorm layers stay in eval mode (models.set_backbone_frozen)
    # the epoch's mean rate over its steps: the rate before the first step is a warmup's floor, not the epoch's
    lr_sum, updates = 0.0, 0
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    finite = torch.ones((), device=device, dtype=torch.bool)
    seen = 0
    before, after = overriding(hooks, "before_batch"), overriding(hooks, "after_batch")
    # only a hook that groups batches needs the epoch's length: any iterable of batches trains (the benchmarks')
    length = len(batches) if isinstance(batches, Sized) else None
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches):
        x, y = to_device(x, y, device, channels_last)
        y, tab = join.split(y) if join is not None else (y, None)
        batch = Batch(step, epoch, length, x, y, y)
        for hook in before:
            hook.before_batch(state, batch)
        if batch.zero_grad:
            optimizer.zero_grad(set_to_none=True)
        # DDP decides in the forward whether the backward all-reduces: a batch the optimizer does not step after
        # keeps its gradient local (no_sync around its forward too); the batch that steps reduces the sum
        with contextlib.nullcontext() if batch.update else _no_sync(train_model):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = forward(train_model, batch.x, tab)
                loss = _loss(target, logits, batch.targets, recipe.label_smoothing)
            state.scaler.scale(loss / batch.loss_divisor).backward()
        finite &= torch.isfinite(loss.detach())
        if step % DIVERGENCE_CHECK_STEPS == 0 and not bool(finite):
            _diverged(epoch, recipe)
        if batch.update:
            lr_sum, updates = lr_sum + _peak_lr(optimizer), updates + 1
            _update(state.model, optimizer, state.scheduler, state.scaler, recipe.grad_clip)
        batch.loss, batch.logits = loss, logits
        for hook in after:
            hook.after_batch(state, batch)
        total_loss += loss.detach().double() * len(y)
        if y.ndim == 1 and not y.is_floating_point():  # a label set or a value has no argmax to be right
            correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        bar.advance(1, postfix=f"epoch {epoch + 1}/{recipe.epochs}")
    if not bool(finite):
        _diverged(epoch, recipe)
    stats = distributed.sum_tensor(
        torch.stack([total_loss, correct.double(), torch.tensor(float(seen), device=device, dtype=torch.float64)])
    )
    total_loss, correct_all, seen_all = stats.tolist()  # waits for the device: the epoch's time includes its queue
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch,
        "lr": lr_sum / updates if updates else _peak_lr(optimizer),
        "train_loss": total_loss / max(seen_all, 1),
        # a label set, value or grade has no argmax to be right: no accuracy rather than a 0
        "train_accuracy": correct_all / max(seen_all, 1) if target is None or target.name == "label" else float("nan"),
        "seconds": seconds,
        "images_per_s": seen_all / max(seconds, 1e-9),
    }


def _peak_lr(optimizer) -> float:
    return max(group["lr"] for group in optimizer.param_groups)  # the head's with --layer-decay


def _no_sync(train_model):
    no_sync = getattr(getattr(train_model, "_orig_mod", train_model), "no_sync", None)  # DDP, maybe compiled
    return no_sync() if no_sync is not None else contextlib.nullcontext()


def _update(model, optimizer, scheduler, scaler, grad_clip: float | None) -> None:
    """One optimizer step on the summed gradients, then the per-step schedule."""
    if grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, device, dtype, channels_last: bool, join=None) -> np.ndarray:
    """Logits (float32, n x classes) for every batch, in order; `join` splits the tabular columns off the rows."""
    model.eval()
    out = []
    for x, y in batches:
        x, y = to_device(x, y if join is not None else torch.zeros(0), device, channels_last)
        tab = join.split(y)[1] if join is not None else None
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            # kept on the device: one copy to the host at the end, not a sync per batch
            out.append(forward(model, x, tab).float())
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), np.float32)


def validate(model, batches: Batches, data: Data, comp: Competition, device, dtype, channels_last) -> dict[str, Any]:
    """Competition metric, loss and accuracy on the validation split; each image counted once."""
    share = distributed.shard(data.val_idx)  # ranks take disjoint slices, no padding rows
    logits = evaluate(model, batches.validation(share), device, dtype, channels_last, getattr(batches, "join", None))
    indices, logits = distributed.gather_rows(share, logits)
    labels = data.labels[indices]
    if len(indices) == 0:
        nan = float("nan")
        return {"val_loss": nan, "val_accuracy": nan, "val_metric": nan, "indices": indices, "logits": logits}
    target = target_of(comp)
    groups = None if data.groups is None else data.groups[indices]
    if target.name != "label":  # label sets, values, grades: the kind's loss and its metric before any fit
        loss = float(target.loss(torch.from_numpy(logits).double(), torch.from_numpy(labels)).item())
        values = target.values(logits)
        interval = _interval(lambda truth, rows: target.score(comp.metric, truth, rows, {}), labels, values, groups)
        return {"val_loss": loss, "val_accuracy": float("nan"), **interval, "indices": indices, "logits": logits}
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    loss = float(F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(labels)).item())
    accuracy = float((logits.argmax(1) == labels).mean())
    interval = _interval(comp.metric, labels, probs, groups)
    return {"val_loss": loss, "val_accuracy": accuracy, **interval, "indices": indices, "logits": logits}


def _interval(metric, labels: np.ndarray, predicted: np.ndarray, groups) -> dict[str, Any]:
    """val_metric and its bootstrap interval (whole groups resampled where declared) for the epoch line. 200
    resamples, not 1000: metrics scored resample by resample (F1, AUC, MAP@k) would otherwise add seconds to every
    epoch; the calibrated figure after training is measured on 1000."""
    found = bootstrap_interval(metric, labels, predicted, groups, resamples=EPOCH_RESAMPLES)
    # floats always: an interval of whole numbers (1, 1) would read back from history.csv as integers
    return {"val_metric": float(found.value), "val_low": float(found.low), "val_high": float(found.high),
            "val_n": found.n, "val_groups": found.groups}  # fmt: skip


def _loss(target: TargetKind | None, logits, targets, smoothing: float):
    if target is None or target.name == "label":
        return batch_loss(logits, targets, smoothing)
    return target.loss(logits, targets)


def _diverged(epoch: int, recipe: Recipe) -> None:
    raise KitError(
        f"training diverged at epoch {display_epoch(epoch)} (the loss is not finite); lower --lr (now {recipe.lr})"
    )
