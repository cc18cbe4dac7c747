"""Batches for the trainer and predictor: DataLoaders over the decoded cache, or GPU-resident tensors.

Two paths with one interface (iterate -> (images float NCHW normalised, labels)):
- `loader(...)`: an Albumentations pipeline in DataLoader workers over the memory-mapped cache
  (any image size; the reference path).
- `GpuBatches`: a fixed-size uint8 cache moved to the device once, augmented there in whole batches
  (CIFAR-10 on a GPU: no worker, no host-to-device copy per step).
Every epoch's order and augmentation are a pure function of (seed, epoch), so a resumed run replays
exactly what an uninterrupted one would have seen.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .cache import ImageCache


def epoch_seed(seed: int, epoch: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + salt) % (2**31 - 1)


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

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        image = self.transform(image=np.asarray(self.cache[i]))["image"]
        label = int(self.labels[i]) if self.labels is not None else -1
        return image, label


def default_workers(device: torch.device, n_images: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type != "cuda" and (cores <= 2 or n_images < 4096):
        return 0  # on a small CPU box workers only steal cores from the model
    return max(1, min(cores - 1, 8))


def loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int,
    workers: int,
    device: torch.device,
    drop_last: bool = False,
    sampler=None,
) -> DataLoader:
    from .augment import seed_worker

    generator = torch.Generator()
    generator.manual_seed(epoch_seed(seed, epoch))
    kwargs = {}
    if workers > 0:
        kwargs = dict(worker_init_fn=seed_worker, prefetch_factor=4, persistent_workers=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        generator=generator,
        **kwargs,
    )


class GpuBatches:
    """Batches of a device-resident uint8 (N, H, W, 3) tensor, augmented on the device."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, indices: np.ndarray, batch_size: int,
                 transform, *, shuffle: bool, seed: int, epoch: int, drop_last: bool = False):
        self.images = images
        self.labels = labels
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=images.device)
        self.batch_size = batch_size
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self.indices
        generator = torch.Generator(device=self.images.device)
        generator.manual_seed(epoch_seed(self.seed, self.epoch))
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=generator, device=order.device)]
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.transform(self.images[idx])
            y = self.labels[idx] if self.labels is not None else torch.full((len(idx),), -1, device=idx.device)
            yield x, y
