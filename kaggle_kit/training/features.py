"""Frozen-backbone feature cache: the backbone runs once per augmented view, then only the head trains.

With `freeze` for the whole run (no `unfreeze_after`) the backbone is a fixed function (its BatchNorm layers
stay in eval mode, see `models.set_backbone_frozen`), so the pooled features of an augmented image never
change. `prepare` computes them for `feature_cache_views` = K augmented views of every training image plus the
evaluation view of every validation image (eval mode, no grad, autocast on CUDA), and keeps them in memory
and on disk, so a rerun or a resume reads them back instead of recomputing. `FeatureBatches` then serves
(features, labels) batches with the trainer's (x, y) interface, and the trainer steps the classifier alone:
an epoch costs milliseconds instead of a full backbone pass.

Which view an epoch sees: epoch e uses view (e mod K) of every image. View v of an image is exactly the
augmentation the image path would draw at epoch v (the same per-image seed, `data.item_seed`), and the batch
order is the image path's (`data.EpochSampler`), so with K >= epochs a cached run sees the very batches an
uncached frozen run sees. With fewer views the views repeat, cycling every K epochs.

The disk copy lives in `<work dir>/features/<key>.pt`, written atomically. The key is a digest of everything
the features depend on: the backbone's weights (so arch, stem, pretrained tag or weights file all count),
the augmentation spec, image size, evaluation resize, normalisation, the data fingerprint, the split, K,
the seed, the image pipeline and the precision.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from ..config.recipe import AugmentSpec, Recipe
from ..core import distributed, progress
from ..core.atomic import atomic_write_bytes
from ..core.errors import KitError
from ..data.datasets import EpochSampler

FORMAT_VERSION = 1


def check_recipe(recipe: Recipe) -> None:
    """A one-line KitError when `feature_cache_views` is set without a backbone frozen for the whole run."""
    views = recipe.feature_cache_views
    if views < 0:
        raise KitError(f"invalid setting feature_cache_views={views}: use 0 (off) or a number of views such as 2")
    if views and not recipe.freeze:
        raise KitError(
            f"--feature-cache-views {views} needs a frozen backbone: add --freeze or drop --feature-cache-views"
        )
    if views and recipe.unfreeze_after is not None:
        raise KitError(
            f"--feature-cache-views {views} needs the backbone frozen for the whole run, but --unfreeze-after "
            f"{recipe.unfreeze_after} trains it later: add --unfreeze-after none or drop --feature-cache-views"
        )


def wanted(recipe: Recipe) -> bool:
    """Whether `fit` trains on cached features (checked by `check_recipe` first)."""
    check_recipe(recipe)
    return recipe.feature_cache_views > 0


# ---- computing ---------------------------------------------------------------------------------------------


@torch.no_grad()
def compute_features(
    model: torch.nn.Module, batches: Iterable, device: torch.device, dtype: torch.dtype | None, channels_last: bool
) -> torch.Tensor:
    """Pooled backbone features (N, D) of every batch, in order, in eval mode; stored as float16 under autocast
    (the features are already of that precision) and float32 otherwise."""
    from ..models.factory import forward_features_pooled

    was_training = model.training
    model.eval()
    # channels_last even where training keeps NCHW (a CPU): for inference it is the faster layout there too
    # (about 1.25x for a ResNet-34 at 224 through oneDNN); the model gets its own layout back afterwards
    convert = not channels_last
    if convert:
        model.to(memory_format=torch.channels_last)
    storage = torch.float16 if dtype is not None else torch.float32
    out = []
    try:
        for x, _ in batches:
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out.append(forward_features_pooled(model, x).to(storage))
    finally:
        model.train(was_training)
        if convert:
            model.to(memory_format=torch.contiguous_format)
    if not out:
        raise KitError("no images to compute backbone features of: the training split is empty")
    return torch.cat(out)


def backbone_digest(model: torch.nn.Module) -> str:
    """A digest of every weight and buffer outside the classifier: what the cached features depend on."""
    head = {id(t) for t in model.get_classifier().state_dict(keep_vars=True).values()}
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in head:
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(
    *,
    backbone: str,
    recipe: Recipe,
    spec: AugmentSpec,
    normalization,
    data_fingerprint: str,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    pipeline: str,
    precision: str,
) -> str:
    import albumentations

    parts = {
        "format": FORMAT_VERSION,
        "arch": recipe.arch,
        "backbone": backbone,
        "augment": asdict(spec),
        "img_size": recipe.img_size,
        "eval_resize": recipe.eval_resize,
        "normalization": [list(normalization[0]), list(normalization[1])],
        "data": data_fingerprint,
        "train_idx": hashlib.blake2b(np.asarray(train_idx, np.int64).tobytes(), digest_size=8).hexdigest(),
        "val_idx": hashlib.blake2b(np.asarray(val_idx, np.int64).tobytes(), digest_size=8).hexdigest(),
        "views": recipe.feature_cache_views,
        "seed": recipe.seed,
        "pipeline": pipeline,  # albumentations and GpuAugment draw different (equally distributed) augmentations
        "albumentations": albumentations.__version__,
        "precision": precision,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return (
        f"{recipe.arch.replace('/', '_')}-{recipe.img_size}-k{recipe.feature_cache_views}-"
        + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
    )


# ---- the cached set and its batches ---------------------------------------------------------------------------


@dataclass
class FeatureSet:
    """K views of training features (K, N_train, D) in `train_idx` order, validation features (N_val, D) in
    `val_idx` order, on the training device."""

    train: torch.Tensor
    train_labels: torch.Tensor
    train_idx: np.ndarray
    val: torch.Tensor
    val_labels: torch.Tensor
    val_idx: np.ndarray
    key: str
    path: Path | None
    loaded_from_disk: bool
    seconds: float

    @property
    def views(self) -> int:
        return self.train.shape[0]

    def train_batches(self, epoch: int, batch_size: int, seed: int, drop_last: bool) -> FeatureBatches:
        sampler = EpochSampler(len(self.train_idx), seed, shuffle=True)
        sampler.set_epoch(epoch)
        return FeatureBatches(
            self.train[epoch % self.views], self.train_labels, sampler.positions(), batch_size, drop_last
        )

    def val_batches(self, indices: np.ndarray, batch_size: int) -> FeatureBatches:
        indices = np.asarray(indices, dtype=np.int64)
        rows = np.searchsorted(self.val_idx, indices)
        if len(indices) and (rows.max() >= len(self.val_idx) or not np.array_equal(self.val_idx[rows], indices)):
            raise KitError(
                "validation images without cached features were asked for; delete the feature cache and rerun"
            )
        return FeatureBatches(self.val, self.val_labels, rows, batch_size, drop_last=False)


class FeatureBatches:
    """(features float32 (B, D), labels) batches of `rows` of a feature matrix, in that order: the trainer's
    (x, y) interface, for a model that is the classifier alone."""

    def __init__(
        self, features: torch.Tensor, labels: torch.Tensor, rows: np.ndarray, batch_size: int, drop_last: bool
    ):
        self.features, self.labels, self.batch_size, self.drop_last = features, labels, batch_size, drop_last
        self.rows = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=features.device)

    def __len__(self) -> int:
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        for b in range(len(self)):
            rows = self.rows[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.features[rows].float(), self.labels[rows]


# ---- prepare: memory, disk, or compute ---------------------------------------------------------------------------


def prepare(
    model: torch.nn.Module,
    view_batches: Callable[[np.ndarray, int | None], Iterable],
    *,
    recipe: Recipe,
    spec: AugmentSpec,
    normalization,
    labels: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    data_fingerprint: str,
    work_dir: Path | None,
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
    pipeline: str,
) -> FeatureSet:
    """The feature set of `recipe.feature_cache_views` views, read from `work_dir/features` or computed there.

    `view_batches(indices, view)` yields the images `indices` in order: the training augmentation's view
    `view`, or the evaluation pipeline when `view` is None.
    """
    started = time.perf_counter()
    views = recipe.feature_cache_views
    precision = f"{device.type}-{str(dtype).replace('torch.', '') if dtype is not None else 'float32'}"
    key = cache_key(
        backbone=backbone_digest(model),
        recipe=recipe,
        spec=spec,
        normalization=normalization,
        data_fingerprint=data_fingerprint,
        train_idx=train_idx,
        val_idx=val_idx,
        pipeline=pipeline,
        precision=precision,
    )
    path = work_dir / "features" / f"{key}.pt" if work_dir is not None else None
    train_labels = torch.as_tensor(np.asarray(labels)[train_idx], dtype=torch.int64, device=device)
    val_labels = torch.as_tensor(np.asarray(labels)[val_idx], dtype=torch.int64, device=device)

    stored = _read(path, key) if path is not None else None
    if stored is not None:
        train, val = stored["train"].to(device), stored["val"].to(device)
        loaded = True
    else:
        train_views = []
        with progress.bar(views, f"backbone features of {views} view(s) of {len(train_idx)} images") as bar:
            for view in range(views):
                train_views.append(compute_features(model, view_batches(train_idx, view), device, dtype, channels_last))
                bar.advance(1)
        train = torch.stack(train_views)
        val = (
            compute_features(model, view_batches(val_idx, None), device, dtype, channels_last)
            if len(val_idx)
            else train.new_zeros((0, train.shape[-1]))
        )
        if path is not None and distributed.is_main():
            _write(path, key, train, val)
        loaded = False
    seconds = time.perf_counter() - started
    progress.say(
        f"feature cache: {views} view(s) x {len(train_idx)} training + {len(val_idx)} validation images, "
        f"{train.shape[-1]} features, {'read from disk' if loaded else 'computed'} in {seconds:.1f}s"
    )
    return FeatureSet(
        train, train_labels, np.asarray(train_idx), val, val_labels, np.asarray(val_idx), key, path, loaded, seconds
    )


def _read(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn or foreign file (pickle, zip and OS errors share no base): recompute and overwrite
        return None
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None
    return stored


def _write(path: Path, key: str, train: torch.Tensor, val: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"key": key, "train": train.cpu(), "val": val.cpu()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


__all__ = [
    "FeatureBatches",
    "FeatureSet",
    "backbone_digest",
    "cache_key",
    "check_recipe",
    "compute_features",
    "prepare",
    "wanted",
]
