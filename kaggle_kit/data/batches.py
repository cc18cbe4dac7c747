"""The data path: how images become batches on the training device, decided in one place for training, the
feature cache, validation and predict.

    uint8 ImageCache -> either torch batches made from the cache on the device (the whole cache resident and
    augmented there with `GpuAugment` for training; one batch at a time through `GpuEval` for predict), or
    persistent DataLoader workers running the Albumentations pipelines -> normalised float batches on the device

`use_array_path` makes that choice; `Batches` serves training, validation and the feature cache's views,
`eval_batches` the evaluation transform's batches predict applies its TTA views to.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from ..competitions.registry import Competition
from ..competitions.resolution import augmentation_for
from ..config.recipe import Recipe
from ..core import distributed
from ..core.errors import KitError
from ..records.pseudo_labels import PseudoLabels
from ..records.run_folder import RunDir
from .cache import ImageCache, joined_cache, load_images
from .datasets import (
    CachedImages,
    EpochLoader,
    EpochSampler,
    GpuBatches,
    OnDevice,
    cache_batch,
    default_workers,
    device_images,
    epoch_seed,
    loader,
    seed_everything,
)
from .groups import check_group_split, image_groups
from .layout import Layout
from .split import load_split, save_split, stratified_split
from .training_images import TrainingImages


def use_array_path(cache: ImageCache, recipe: Recipe, device: torch.device, *, evaluation: bool = False) -> bool:
    """True: batches made in torch from the uint8 cache; False: DataLoader workers through Albumentations.

    Training (`Batches`): the whole cache resident on the device, augmented there (`GpuAugment`): as the recipe's
    `gpu_data` says, or when left automatic on a GPU whose free memory it fits in four times over.
    Evaluation (`evaluation`, predict's `eval_batches`): whole uint8 batches from the memory map, converted in
    torch: on a GPU always, through the trainer's own GPU evaluation transform (`gpu_augment.GpuEval`, photos of any
    sizes included); on a CPU only for fixed-size images needing no resize, where it equals the Albumentations
    eval transform exactly."""
    if evaluation:
        if device.type == "cuda":
            return True
        if not cache.is_uniform():
            return False
        h, w, _ = (int(v) for v in cache.shapes[0])
        return h == w == recipe.img_size and recipe.eval_resize == recipe.img_size
    if recipe.gpu_data is not None:
        return recipe.gpu_data
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return cache.nbytes() < 0.25 * free  # the rest stays for the model, its activations and the optimiser


@dataclass
class Data:
    train_cache: ImageCache
    labels: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    ids: list[str]
    features: np.ndarray | None = None  # encoded tabular columns of every image (data/tabular.py), None: none
    groups: np.ndarray | None = None  # each image's group (a driver, a patient), for the validation interval


def prepare_data(
    layout: Layout,
    recipe: Recipe,
    run: RunDir | None,
    resume: bool,
    images: TrainingImages = TrainingImages(),
) -> Data:
    """The training cache and the split: split.json's on resume, `images.val_ids` where given (a fold of a fold
    group), else a new seeded stratified split; saved as the run's split.json. `images.pseudo`: test images joined
    to training."""
    val_ids, pseudo = images.val_ids, images.pseudo
    cache = load_images(layout, "train", recipe.cache_side, skip_bad=recipe.skip_bad_images)
    ids = layout.train.ids
    split_path = run.file("split.json") if run else None
    split = None
    if distributed.is_main():
        if resume and split_path and split_path.is_file():
            split = load_split(split_path, ids)
        elif val_ids is not None:
            position = {image_id: n for n, image_id in enumerate(ids)}
            val_idx = np.sort(np.array([position[i] for i in val_ids], dtype=np.int64))
            split = np.setdiff1d(np.arange(len(ids)), val_idx), val_idx
            if split_path:
                save_split(split_path, ids, val_idx, recipe.val_fraction, recipe.seed)
        else:
            split = _split(layout, recipe)
            if split_path:
                save_split(split_path, ids, split[1], recipe.val_fraction, recipe.seed)
    # rank 0 alone reads or writes split.json and hands its split to the others: no rank reads a half-written
    # file, and every rank trains and validates on one split whatever the file held
    train_idx, val_idx = distributed.broadcast_object(split)
    if recipe.full_train:
        # every image trains, so none is left to validate, pick a best epoch or calibrate on: a score measured on
        # training images would pass for a validation one (and a temperature fitted on them sharpens the submission)
        train_idx, val_idx = np.arange(len(ids)), np.zeros(0, dtype=np.int64)
    if cache.bad_ids:
        bad = {ids.index(i) for i in cache.bad_ids}
        train_idx = np.array([i for i in train_idx if i not in bad], dtype=np.int64)
        val_idx = np.array([i for i in val_idx if i not in bad], dtype=np.int64)
    data = Data(cache, layout.train_labels, train_idx, val_idx, ids, groups=image_groups(layout))
    return with_pseudo_labels(data, layout, recipe, pseudo) if pseudo is not None else data


def _split(layout: Layout, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """The seeded validation split: whole groups where a group column is declared (no validation image shares a
    training group; for label sets and values, groups win over their own stratification, said in the docs), else
    stratified as the target needs."""
    groups = image_groups(layout)
    if groups is not None:
        split = stratified_split(_strata(layout.train_labels), recipe.val_fraction, recipe.seed, groups)
        check_group_split(groups, *split)
        return split
    if layout.competition.target != "label":  # label sets and values: stratified as the target needs
        from .target_labels import target_split

        return target_split(layout.train_labels, recipe.val_fraction, recipe.seed)
    return stratified_split(layout.train_labels, recipe.val_fraction, recipe.seed)


def _strata(labels: np.ndarray) -> np.ndarray:
    """One class per image to stratify grouped splits on: a label, a label set's rarest label, a value's quartile."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        counts = labels.sum(axis=0)
        rarest = np.argmin(np.where(labels > 0, counts, np.inf), axis=1)
        return np.where(labels.any(axis=1), rarest, -1)
    if labels.dtype.kind == "f":
        return np.digitize(labels, np.quantile(labels, [0.25, 0.5, 0.75]))
    return labels


def with_pseudo_labels(data: Data, layout: Layout, recipe: Recipe, pseudo: PseudoLabels) -> Data:
    """`data` with the pseudo-labelled test images appended to the cache and to the training split alone: the
    validation split keeps its labelled images, and its positions, unchanged. Pixels come from predict's test
    cache (decoded once), at the size this run trains at."""
    test = load_images(layout, "test", recipe.cache_side, skip_bad=True)
    position = {image_id: n for n, image_id in enumerate(test.ids)}
    missing = [i for i in pseudo.ids if i not in position]
    if missing:
        raise KitError(
            f"pseudo-label id {missing[0]} is not a test id of {layout.sample_path} ({len(missing)} missing): "
            f"train with the data the pseudo-labels were chosen on"
        )
    positions = np.array([position[i] for i in pseudo.ids], dtype=np.int64)
    cache = joined_cache(data.train_cache, test, positions, layout.work_dir)
    first = len(data.train_cache)
    return Data(
        cache,
        np.concatenate([data.labels, pseudo.labels]).astype(np.int64),
        np.concatenate([data.train_idx, first + np.arange(len(positions))]).astype(np.int64),
        data.val_idx,
        list(data.ids) + list(pseudo.ids),
        groups=data.groups,  # validation rows are the labelled images, the first ones
    )


class Batches:
    """Train and validation batches for one epoch: GPU-resident images, DataLoaders, or cached features.

    Images: on the GPU-resident path (the whole uint8 cache on the device, `GpuAugment`) or through one persistent
    DataLoader per split (`EpochLoader`: workers kept across epochs, pinned memory, prefetch).
    Features: once `features` holds a `features.FeatureSet` (frozen backbone, `feature_cache_views` > 0),
    `train` and `validation` serve cached backbone features instead, for a model that is the classifier alone.
    """

    def __init__(self, data: Data, comp: Competition, recipe: Recipe, device: torch.device, mean, std):
        from . import augment, gpu_augment

        self.data, self.recipe, self.device = data, recipe, device
        self.features = None  # set by fit to a features.FeatureSet for head-only epochs
        # tabular columns travel beside the truth, one [truth | features] row per image (data/tabular.py)
        self.join, label_rows = None, data.labels
        if data.features is not None:
            from .tabular import FeatureJoin

            self.join = FeatureJoin.of(data.labels, data.features)
            label_rows = self.join.join(data.labels, data.features)
        self.label_rows = label_rows
        self._train_loader: EpochLoader | None = None
        self._val_loader: tuple[bytes, EpochLoader] | None = None
        spec = augmentation_for(comp, recipe)
        self.use_gpu_data = use_array_path(data.train_cache, recipe, device)
        workers_only = augment.needs_workers(spec)
        if self.use_gpu_data and workers_only:
            # GpuAugment has no policy or erasing: the run keeps its augmentation and reads through workers
            if distributed.is_main():
                print(
                    f"note: augmentation '{recipe.aug}' has {' and '.join(workers_only)}, which only the "
                    f"Albumentations pipeline applies: training reads through DataLoader workers, not from the "
                    f"device",
                    file=sys.stderr,
                    flush=True,
                )
            self.use_gpu_data = False
        if self.use_gpu_data:
            self.images = device_images(data.train_cache, device)
            self.labels = torch.as_tensor(label_rows, device=device)
            self.train_transform = gpu_augment.GpuAugment(spec, recipe.img_size, mean, std, resize=recipe.eval_resize)
            self.eval_transform = gpu_augment.GpuEval(recipe.img_size, recipe.eval_resize, mean, std)
        else:
            # workers crop, flip, colour and add noise; the batch is normalised on the training device
            self.train_transform = augment.build_train_transform(
                spec, recipe.img_size, mean, std, normalize=False, resize=recipe.eval_resize
            )
            self.train_finish = gpu_augment.DeviceNormalize(mean, std)
            self.eval_transform = augment.build_eval_transform(recipe.img_size, recipe.eval_resize, mean, std)
            self.workers = (
                recipe.workers if recipe.workers is not None else default_workers(device, len(data.train_idx))
            )

    def describe(self) -> str:
        if self.use_gpu_data:
            n, megabytes = len(self.data.train_cache), self.data.train_cache.nbytes() / 2**20
            return f"{n} images resident on {self.device} ({megabytes:,.0f} MB), augmented there"
        return (
            f"DataLoader with {self.workers} worker process{'es' if self.workers != 1 else ''}, "
            f"normalised on {self.device}"
        )

    def train(self, epoch: int):
        recipe, data = self.recipe, self.data
        per_rank = len(data.train_idx) // distributed.world_size()
        drop_last = per_rank > recipe.batch_size
        if self.features is not None:
            return self.features.train_batches(epoch, recipe.batch_size, recipe.seed, drop_last)
        if self.use_gpu_data:
            # the same seeded order and equal per-rank shares as the DataLoader path's sampler
            sampler = EpochSampler(
                len(data.train_idx),
                recipe.seed,
                shuffle=True,
                rank=distributed.rank(),
                world_size=distributed.world_size(),
            )
            sampler.set_epoch(epoch)
            return GpuBatches(
                self.images,
                self.labels,
                data.train_idx[sampler.positions()],
                recipe.batch_size,
                self.train_transform,
                drop_last=drop_last,
            )
        if self._train_loader is None:
            # one loader for the whole run; its sampler shards by rank and seeds each image from (seed, epoch)
            dataset = CachedImages(data.train_cache, data.train_idx, self.label_rows, self.train_transform)
            self._train_loader = EpochLoader(
                dataset,
                recipe.batch_size,
                shuffle=True,
                seed=recipe.seed,
                workers=self.workers,
                device=self.device,
                drop_last=drop_last,
                rank=distributed.rank(),
                world_size=distributed.world_size(),
            )
        return OnDevice(self._train_loader.epoch(epoch), self.train_finish, self.device)

    def validation(self, indices: np.ndarray):
        recipe, data = self.recipe, self.data
        if self.features is not None:
            return self.features.val_batches(indices, recipe.val_batch_size)
        if self.use_gpu_data:
            return GpuBatches(self.images, self.labels, indices, recipe.val_batch_size, self.eval_transform)
        key = np.asarray(indices, dtype=np.int64).tobytes()
        if self._val_loader is None or self._val_loader[0] != key:  # the same images every epoch: workers stay
            dataset = CachedImages(data.train_cache, indices, self.label_rows, self.eval_transform)
            self._val_loader = (
                key,
                EpochLoader(
                    dataset,
                    recipe.val_batch_size,
                    shuffle=False,
                    seed=recipe.seed,
                    workers=self.workers,
                    device=self.device,
                ),
            )
        return self._val_loader[1].epoch(0)

    def view_batches(self, indices: np.ndarray, view: int | None):
        """`indices`' images in order, for the feature cache: view `view` of the training augmentation (the
        augmentation the image path draws for them at epoch `view`), or the evaluation pipeline for None."""
        recipe, data = self.recipe, self.data
        if self.use_gpu_data:
            transform = self.eval_transform if view is None else self.train_transform
            if view is not None:
                seed_everything(epoch_seed(recipe.seed, view, salt=3))  # GpuAugment draws from torch's generator
            return GpuBatches(self.images, self.labels, indices, recipe.val_batch_size, transform)
        transform = self.eval_transform if view is None else self.train_transform
        dataset = CachedImages(data.train_cache, indices, self.label_rows, transform)
        batches = EpochLoader(
            dataset, recipe.val_batch_size, shuffle=False, seed=recipe.seed, workers=self.workers, device=self.device
        )
        return batches.epoch(0) if view is None else OnDevice(batches.epoch(view), self.train_finish, self.device)


# --------------------------------------------------------------------------------------- evaluation


def eval_batches(
    cache: ImageCache,
    indices: np.ndarray,
    recipe: Recipe,
    mean,
    std,
    device: torch.device,
    batch_size: int,
    workers: int | None = None,
    path: str = "auto",
):
    """`cache[indices]` in order through the evaluation transform, as normalised float batches on `device`, and how
    they are made: "array" or "loader". `path` "auto" follows `use_array_path(..., evaluation=True)`; "array" or
    "loader" forces one."""
    use_array = use_array_path(cache, recipe, device, evaluation=True) if path == "auto" else path == "array"
    if use_array:
        return _array_batches(cache, indices, batch_size, device, recipe, mean, std), "array"
    return _loader_batches(cache, indices, batch_size, device, recipe, mean, std, workers), "loader"


def _array_batches(
    cache: ImageCache, indices: np.ndarray, batch_size: int, device: torch.device, recipe: Recipe, mean, std
):
    from .gpu_augment import GpuEval

    # the trainer's device-side evaluation transform, so predictions match the validation that chose the checkpoint
    transform = GpuEval(recipe.img_size, recipe.eval_resize, mean, std)
    for start in range(0, len(indices), batch_size):
        yield transform(cache_batch(cache, indices[start : start + batch_size], device))


def _loader_batches(
    cache: ImageCache, indices: np.ndarray, batch_size: int, device: torch.device, recipe: Recipe, mean, std, workers
):
    from .augment import build_eval_transform

    transform = build_eval_transform(recipe.img_size, recipe.eval_resize, mean, std)
    if workers is None:
        workers = recipe.workers if recipe.workers is not None else default_workers(device, len(indices))
    dataset = CachedImages(cache, indices, None, transform)
    for x, _ in loader(dataset, batch_size, workers=workers, device=device):
        yield x.to(device, non_blocking=True)
