"""Streamed inference with test-time augmentation: test images batch by batch from the uint8 cache, logits
averaged over the TTA views.

Memory: images stay in the uint8 cache (a memory map) and only one batch at a time becomes floats, so
CIFAR-10's 300,000 test images cost one batch of floats plus a (300,000 x 10) float32 logit array.

TTA views: the image and its horizontal flip; at a competition's native size (CIFAR-10's 32x32) also
the image shifted by 2 pixels left, right, up and down (reflect padding, as the training translation
pads). Views are averaged in logit space, not probability space: one logit row per image keeps the
temperature fit and the saved validation logits the same shape with or without TTA, and a logit mean
is the renormalised geometric mean of the views' probabilities, which punishes a view's confident
mistake less than it rewards agreement - no worse than a probability mean in published TTA results."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..competitions.registry import Competition
from ..config.recipe import Recipe
from ..core import progress
from ..data.batches import eval_batches
from ..data.cache import ImageCache
from ..models.tabular import forward
from ..training.device import autocast_dtype, images_to_device, use_channels_last

TTA_SHIFT = 2  # pixels; small next to the training translation (4), so a shifted view stays in-distribution

IDENTITY, HFLIP = "identity", "hflip"

SHIFTS = {
    "shift-left": (-TTA_SHIFT, 0),
    "shift-right": (TTA_SHIFT, 0),
    "shift-up": (0, -TTA_SHIFT),
    "shift-down": (0, TTA_SHIFT),
}


def tta_views(comp: Competition, recipe: Recipe) -> tuple[str, ...]:
    """The TTA views for this competition and input size; the identity always comes first."""
    views = (IDENTITY, HFLIP)
    if comp.native_size and recipe.img_size == comp.native_size:
        views += tuple(SHIFTS)
    return views


def apply_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """One TTA view of a normalised NCHW batch. Shifts move the content by (dx, dy) pixels, filling the
    uncovered border by reflection (normalisation is per-channel affine, so reflecting normalised values
    equals reflecting pixels)."""
    if view == IDENTITY:
        return x
    if view == HFLIP:
        return x.flip(-1)
    if view not in SHIFTS:
        raise ValueError(f"unknown TTA view {view!r}")
    dx, dy = SHIFTS[view]
    pad = TTA_SHIFT
    height, width = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    top, left = pad - dy, pad - dx
    return padded[..., top : top + height, left : left + width]


@dataclass
class Logits:
    """Per-image logits (float32, n x classes): averaged over the views, and of the identity view alone."""

    mean: np.ndarray
    identity: np.ndarray
    views: tuple[str, ...]
    seconds: float
    path: str  # "array" or "loader": how the batches were made

    @property
    def images_per_s(self) -> float:
        return len(self.mean) / max(self.seconds, 1e-9)


@torch.inference_mode()
def stream_logits(
    model: torch.nn.Module,
    cache: ImageCache,
    indices: np.ndarray,
    recipe: Recipe,
    mean,
    std,
    device: torch.device,
    views: tuple[str, ...] = (IDENTITY,),
    batch_size: int | None = None,
    workers: int | None = None,
    description: str = "predicting",
    batch_path: str = "auto",
    rows: np.ndarray | None = None,
    bar=None,
    per_view=None,
) -> Logits:
    """The model's logits for `cache[indices]`, one batch of floats at a time, with a progress bar.

    `batch_path`: "auto" (array when possible, see `batches.use_array_path`), "array" or "loader". `rows`: the
    encoded tabular columns of `indices`, in their order, for a model with a tabular branch (None: images only).
    `bar`: a progress bar to advance instead of opening one (a shard of a prediction split across devices, see
    `sharding`). `per_view`: a function of each view's logits applied before the views are averaged (a target
    kind's sigmoid or softmax, so that TTA averages probabilities); the returned arrays then hold its values.
    """
    if views[0] != IDENTITY:
        raise ValueError("the identity view must come first")
    indices = np.asarray(indices, dtype=np.int64)
    batch_size = batch_size or recipe.val_batch_size  # predict's own --batch-size, else the validation one
    dtype = autocast_dtype(device, recipe)
    channels_last = use_channels_last(recipe, device)
    batches, path = eval_batches(cache, indices, recipe, mean, std, device, batch_size, workers, batch_path)
    model.eval()
    mean_logits: np.ndarray | None = None
    identity_logits: np.ndarray | None = None
    done = 0
    started = time.perf_counter()
    with nullcontext(bar) if bar is not None else progress.bar(len(indices), description) as bar:
        for x in batches:
            x = images_to_device(x, device, channels_last)
            n = x.shape[0]
            tab = None if rows is None else torch.from_numpy(np.asarray(rows[done : done + n])).to(device)
            total = None
            first = None
            for view in views:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    out = forward(model, apply_view(x, view), tab).float()
                if per_view is not None:
                    out = per_view(out)
                total = out if total is None else total + out
                if first is None:
                    first = out
            if mean_logits is None:  # the class count is known from the first batch
                mean_logits = np.empty((len(indices), total.shape[1]), np.float32)
                identity_logits = np.empty_like(mean_logits) if len(views) > 1 else mean_logits
            mean_logits[done : done + n] = (total / len(views)).cpu().numpy()
            if len(views) > 1:
                identity_logits[done : done + n] = first.cpu().numpy()
            done += n
            bar.advance(n, postfix=f"{len(views)} view{'s' if len(views) > 1 else ''}")
    seconds = time.perf_counter() - started
    if mean_logits is None:
        mean_logits = identity_logits = np.zeros((0, 0), np.float32)
    if done != len(indices):
        raise RuntimeError(f"predicted {done} images of {len(indices)}")
    return Logits(mean_logits, identity_logits, tuple(views), seconds, path)
