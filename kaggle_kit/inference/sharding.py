"""Prediction split across devices: both of a Kaggle notebook's T4s predict half of the test set each.

The test images are cut into contiguous shards, one per device, at whole-batch boundaries: every batch a device
sees is the very batch one device alone would have seen, so the merged logits equal the single-device run's (bitwise
on a CPU in fp32, where a test runs two shards through this same path with `devices=["cpu", "cpu"]`). Each device
streams its shard in a thread of its own with its own replica of the model (a copy of the torch module on that GPU,
or an ONNX Runtime session on it) and the shards are merged in the original order.

Threads, not processes: the forward passes run in CUDA kernels and ONNX Runtime, which release the GIL, and a
thread shares the loaded weights and the memory-mapped image cache; a process per GPU would pay for a second
`import torch`, a second CUDA context and a second read of the checkpoint.
"""

from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..core import distributed, progress
from ..core.errors import KitError
from ..training.device import resolve_device
from .engines import EngineChoice, with_onnx
from .loading import LoadedRun
from .streaming import Logits, stream_logits


@dataclass(frozen=True)
class Replica:
    """The model on one device."""

    model: torch.nn.Module
    device: torch.device


def inference_devices(devices, device: str = "auto") -> list[torch.device]:
    """The devices a prediction runs on. `devices` None: every visible GPU where `device` is auto or cuda (both of a
    Kaggle notebook's T4s), else `device` alone; or a list ("cuda:0,cuda:1", "cpu,cpu": a CPU test of the split)."""
    if devices is None:
        # a process of a distributed launch keeps its own GPU: the other ranks hold the others
        if device in ("auto", "cuda") and torch.cuda.is_available() and not distributed.is_distributed():
            return [torch.device("cuda", index) for index in range(torch.cuda.device_count())]
        return [resolve_device(device)]
    names = [n.strip() for n in devices.split(",")] if isinstance(devices, str) else [str(n) for n in devices]
    if not names or "" in names:
        raise KitError(f"--devices {devices!r}: give device names separated by commas, e.g. cuda:0,cuda:1 or cpu,cpu")
    found = [resolve_device(name) for name in names]
    if len({d.type for d in found}) > 1:
        raise KitError(
            f"--devices {devices!r} mixes CPU and GPU: their precisions differ, so the shards would not agree; "
            "use GPUs only or cpu only"
        )
    return found


def replicate(loaded: LoadedRun, choice: EngineChoice, devices: list[torch.device]) -> list[Replica]:
    """`loaded`'s model on each device, on the engine `choice` names; a device it is already on shares it."""
    replicas = []
    for device in devices:
        if device == loaded.device:
            model = loaded.model
        elif choice.name == "onnx":
            model = with_onnx(replace(loaded, device=device), choice.onnx_path).model
        else:
            model = copy.deepcopy(loaded.model).to(device).eval()
        replicas.append(Replica(model, device))
    return replicas


def contiguous_shards(images: int, parts: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each device's shard: the batches dealt out in order as evenly as they go, so no batch is
    cut and the shards cover every image once. A device left without a batch gets no shard."""
    batches = -(-images // batch_size)
    shares = [len(share) for share in np.array_split(np.arange(batches), parts)]
    bounds, start = [], 0
    for share in shares:
        stop = min(start + share * batch_size, images)
        if stop > start:
            bounds.append((start, stop))
        start = stop
    return bounds


class _SharedBar:
    """One progress bar advanced by every shard's thread."""

    def __init__(self, bar):
        self.bar, self.lock = bar, threading.Lock()

    def advance(self, n: int, **kwargs) -> None:
        with self.lock:
            self.bar.advance(n, **kwargs)


def sharded_logits(
    replicas: list[Replica],
    cache,
    indices: np.ndarray,
    recipe,
    mean,
    std,
    views: tuple[str, ...],
    batch_size: int | None = None,
    workers: int | None = None,
    description: str = "predicting",
    rows: np.ndarray | None = None,
) -> Logits:
    """`stream_logits` of `cache[indices]`, split across the replicas' devices and merged in order. `rows`: the
    tabular columns of `indices`, in their order (None: images only), cut along with them."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(replicas) == 1:
        only = replicas[0]
        stream = (recipe, mean, std, only.device, views, batch_size, workers, description)
        return stream_logits(only.model, cache, indices, *stream, rows=rows)
    batch_size = batch_size or recipe.val_batch_size
    if replicas[0].device.type == "cpu":
        workers = 0  # a worker process forked from one of several busy threads can inherit a held lock

    def shard(replica: Replica, bounds: tuple[int, int], bar) -> Logits:
        if replica.device.type == "cuda":
            torch.cuda.set_device(replica.device)  # this thread's allocations and streams belong to its GPU
        part = indices[bounds[0] : bounds[1]]
        part_rows = None if rows is None else rows[bounds[0] : bounds[1]]
        return stream_logits(
            replica.model, cache, part, recipe, mean, std, replica.device, views, batch_size, workers, bar=bar,
            rows=part_rows,
        )  # fmt: skip

    bounds = contiguous_shards(len(indices), len(replicas), batch_size)
    started = time.perf_counter()
    where = ", ".join(str(r.device) for r in replicas[: len(bounds)])
    with progress.bar(len(indices), f"{description} on {where}") as bar, ThreadPoolExecutor(len(bounds)) as pool:
        shared = _SharedBar(bar)
        parts = [f.result() for f in [pool.submit(shard, r, b, shared) for r, b in zip(replicas, bounds)]]
    seconds = time.perf_counter() - started
    if not parts:
        empty = np.zeros((0, 0), np.float32)
        return Logits(empty, empty, tuple(views), seconds, "array")
    merged = np.concatenate([p.mean for p in parts])
    identity = np.concatenate([p.identity for p in parts]) if len(views) > 1 else merged
    return Logits(merged, identity, tuple(views), seconds, parts[0].path)
