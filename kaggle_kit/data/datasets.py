"""Batches for the trainer and predictor: DataLoaders over the decoded cache, or GPU-resident tensors.

Two paths with one interface (iterate -> (images float NCHW normalised, labels)):
- `EpochLoader` (training) and `loader(...)` (one pass): an Albumentations pipeline in DataLoader workers over
  the memory-mapped cache (any image size; the reference path). `EpochLoader` keeps one DataLoader, and so one
  set of worker processes, for the whole run: its `EpochSampler` hands every image its own augmentation seed,
  drawn from (seed, epoch, position), so order and augmentation do not depend on which worker serves an image,
  on how many workers there are, or on what a worker did in earlier epochs.
- `GpuBatches`: the whole uint8 cache moved to the device once (`device_images`), augmented there in whole
  batches: no worker, no host-to-device copy per step. Fixed-size images (CIFAR-10) form one (N, H, W, 3)
  tensor; photos of different sizes (Dog Breed) stay back to back as `augment.RaggedImages`.
Every epoch's order and augmentation are a pure function of (seed, epoch), so a resumed run replays
exactly what an uninterrupted one would have seen.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .cache import ImageCache


def epoch_seed(seed: int, epoch: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + salt) % (2**31 - 1)


def item_seed(seed: int, epoch: int, position: int) -> int:
    """The augmentation seed of dataset position `position` in `epoch`: distinct per (seed, epoch, position)."""
    # a multiplicative mix (splitmix64 constants) so neighbouring positions and epochs get unrelated seeds
    mixed = (epoch_seed(seed, epoch, salt=2) * 0x9E3779B97F4A7C15 + (position + 1) * 0xBF58476D1CE4E5B9) % 2**64
    return (mixed ^ (mixed >> 31)) % 2**63


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class CachedImages(Dataset):
    """Images `indices` of a cache, each through `transform`, with labels (-1 for unlabelled test images)."""

    def __init__(self, cache: ImageCache, indices: np.ndarray, labels: np.ndarray | None, transform):
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]):
        """`key` is a position, or (position, augmentation seed) from an `EpochSampler`."""
        k, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None:
            self._reseed(seed)
        i = int(self.indices[k])
        # a private copy: the cache is a read-only memory map, and a pipeline that leaves an image as it is
        # (a flip not drawn) would hand torch a non-writable array
        image = self.transform(image=np.array(self.cache[i]))["image"]
        label = -1 if self.labels is None else self._label(i)
        return image, label

    def _label(self, i: int):
        # a class index; a label set (a row of 0/1) or a value goes as float32, for its target kind's loss
        if self.labels.ndim == 1 and self.labels.dtype.kind in "iu":
            return int(self.labels[i])
        return np.asarray(self.labels[i], dtype=np.float32)

    def _reseed(self, seed: int) -> None:
        from .augment import WorkerSeededCompose, reseed_pipeline

        reseed_pipeline(self.transform, seed)
        worker = torch.utils.data.get_worker_info()
        if worker is not None and isinstance(self.transform, WorkerSeededCompose):
            # the pipeline's own first-call-in-a-worker re-seed would otherwise replace this image's seed
            self.transform.worker_seed = worker.seed


def default_workers(device: torch.device, n_images: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type != "cuda" and (cores <= 2 or n_images < 4096):
        return 0  # on a small CPU box workers only steal cores from the model
    # cores are shared among the GPU processes of this machine (torchrun sets LOCAL_WORLD_SIZE)
    per_process = cores // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(1, min(per_process - 1, MAX_WORKERS))


# Measured on one H100 host of 16 cores (ResNet-34 at 224, bf16, batch 256): 8 workers delivered 5,100
# images/s, 15 workers only 4,600 - beyond 8 they starve the main process that pins and launches.
MAX_WORKERS = 8


def loader(dataset: Dataset, batch_size: int, *, workers: int, device: torch.device) -> DataLoader:
    """One pass over `dataset` in order (evaluation and prediction); training uses `EpochLoader`."""
    from .augment import seed_worker

    kwargs = dict(worker_init_fn=seed_worker, prefetch_factor=4) if workers > 0 else {}
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda", **kwargs
    )


class EpochSampler(Sampler):
    """Dataset positions for one epoch at a time, each paired with that image's augmentation seed.

    Call `set_epoch(e)` before iterating (the DataLoader iterates its sampler in the main process, so this
    reaches persistent workers too). With `shuffle` the order is a seeded permutation of (seed, epoch);
    under DDP (`world_size` > 1) each rank takes its own equal, disjoint slice of that permutation.
    """

    def __init__(self, n: int, seed: int, *, shuffle: bool, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def positions(self) -> np.ndarray:
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng(epoch_seed(self.seed, self.epoch)).permutation(self.n)
        if self.world_size > 1:
            share = self.n // self.world_size  # equal shares: every rank runs the same number of steps
            order = order[self.rank * share : (self.rank + 1) * share]
        return order

    def __len__(self) -> int:
        return self.n // self.world_size if self.world_size > 1 else self.n

    def __iter__(self):
        for position in self.positions().tolist():
            yield position, item_seed(self.seed, self.epoch, position)


class EpochLoader:
    """One DataLoader for every epoch of a run: workers start once and stay (persistent), batches are pinned
    on CUDA and prefetched; `epoch(e)` returns the loader set up for epoch e, a pure function of (seed, e)."""

    def __init__(
        self,
        dataset: CachedImages,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        workers: int,
        device: torch.device,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        from .augment import seed_worker

        self.sampler = EpochSampler(len(dataset), seed, shuffle=shuffle, rank=rank, world_size=world_size)
        kwargs = {}
        if workers > 0:
            kwargs = dict(worker_init_fn=seed_worker, prefetch_factor=4, persistent_workers=True)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=drop_last,
            **kwargs,
        )

    def epoch(self, epoch: int) -> DataLoader:
        self.sampler.set_epoch(epoch)
        return self.loader

    def __len__(self) -> int:
        return len(self.loader)


class OnDevice:
    """A loader's batches moved to `device` (non-blocking from pinned memory) and finished there by `finish`
    (e.g. `augment.DeviceNormalize`): workers send compact uint8 images, the device does the float maths."""

    def __init__(self, batches, finish, device: torch.device):
        self.batches, self.finish, self.device = batches, finish, device

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for x, y in self.batches:
            yield self.finish(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)


COPY_BYTES = 64 << 20  # host-to-device copy piece: the host never holds a second copy of a large cache


def device_images(cache: ImageCache, device: torch.device):
    """The whole decoded cache on `device`: a uint8 (N, H, W, 3) tensor for fixed-size images, else
    `augment.RaggedImages`. Copied from the memory map in pieces (on a CPU device too: the map is read-only)."""
    from .gpu_augment import RaggedImages

    nbytes = int((cache.starts + np.prod(cache.shapes, axis=1)).max()) if len(cache) else 0
    flat = torch.empty(nbytes, dtype=torch.uint8, device=device)
    for begin in range(0, nbytes, COPY_BYTES):
        piece = np.array(cache.pixels[begin : begin + COPY_BYTES])
        flat[begin : begin + len(piece)].copy_(torch.from_numpy(piece))
    if cache.is_uniform():
        return flat.view(len(cache), *(int(v) for v in cache.shapes[0]))
    return RaggedImages.from_flat(flat, cache.starts, cache.shapes[:, :2])


def cache_batch(cache: ImageCache, indices: np.ndarray, device: torch.device):
    """Images `indices` of the cache as one uint8 batch on `device`, shaped as `device_images` shapes the whole
    cache. A run of consecutive images is one slice of the memory map; the map itself is never loaded whole."""
    from .gpu_augment import RaggedImages

    indices = np.asarray(indices, dtype=np.int64)
    consecutive = len(indices) > 0 and bool((np.diff(indices) == 1).all())
    if cache.is_uniform():
        array = cache.uniform_array()
        pixels = np.array(array[indices[0] : indices[-1] + 1] if consecutive else array[indices])
        return torch.from_numpy(pixels).to(device, non_blocking=True)
    sizes = np.prod(cache.shapes[indices], axis=1)
    starts = cache.starts[indices]
    if consecutive:
        flat = np.array(cache.pixels[starts[0] : starts[-1] + sizes[-1]])
        local = starts - starts[0]
    else:
        flat = np.concatenate([cache.pixels[a : a + n] for a, n in zip(starts, sizes)])
        local = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return RaggedImages.from_flat(
        torch.from_numpy(flat).to(device, non_blocking=True), local, cache.shapes[indices, :2]
    )


class GpuBatches:
    """Batches of device-resident uint8 images (see `device_images`), in the given order, augmented on the device.

    The order comes from the caller (an `EpochSampler`'s positions when training), so both data paths draw
    their epoch order, and their DDP shards, from one mechanism. Images are augmented several batches at a
    time (up to `AUGMENT_BYTES[device type]` of float output per call, at least one batch): a small-image
    batch (CIFAR-10) is microseconds of GPU work but dozens of kernel launches, and an eager training step that
    is partly launch-bound would pay for every one of them. Every image draws its own augmentation either way.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        indices: np.ndarray,
        batch_size: int,
        transform,
        *,
        drop_last: bool = False,
    ):
        self.images = images
        self.labels = labels
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=images.device)
        self.batch_size = batch_size
        self.transform = transform
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches_per_call(self) -> int:
        image_bytes = 3 * int(self.transform.img_size) ** 2 * 4  # float32 CHW out of the transform
        return max(1, augment_bytes(self.indices.device.type) // (image_bytes * self.batch_size))

    def __iter__(self):
        size, per_call = self.batch_size, self.batches_per_call()
        for first in range(0, len(self), per_call):
            count = min(per_call, len(self) - first)
            idx = self.indices[first * size : (first + count) * size]
            x = self.transform(self.images[idx])
            y = self.labels[idx] if self.labels is not None else torch.full((len(idx),), -1, device=idx.device)
            for b in range(count):
                yield x[b * size : (b + 1) * size], y[b * size : (b + 1) * size]


# Float output per augmentation call (0: one batch). GPU: CIFAR-10 at batch 512 is 10 batches per call, Dog at
# 224 and batch 256 one; the caching allocator reuses the temporaries. CPU (the GPU path forced): no launches to
# amortise, and benchmarks/bench_augment_calls.py measured calls of 64 MB and more at about 0.5x the speed of one
# batch per call (large temporaries go back to the OS and page-fault on every call).
AUGMENT_BYTES = {"cuda": 64 << 20, "cpu": 0}


def augment_bytes(device_type: str) -> int:
    """The float output per augmentation call on this kind of device (other kinds: as the CPU)."""
    return AUGMENT_BYTES.get(device_type, AUGMENT_BYTES["cpu"])
