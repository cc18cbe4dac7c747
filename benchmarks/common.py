"""Shared pieces of the benchmarks: the machine description, timing, generated data, tables and JSON.

Every benchmark runs its baseline and kaggle-kit's path side by side in the same process (or the same
script), on the same data, and prints both absolute figures and their ratio. Data is generated: CIFAR-10
through `kaggle_kit.competitions.samples.write_sample` (the real download layout, 32x32 PNGs in 7z archives), Dog Breed
as full-size 500x375 JPEGs written here (the sample generator's photos are ~100 px, far cheaper to decode
than the real ones).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

DOG_SIZE = (500, 375)  # width, height of most Dog Breed photos (kaggle-facts section 2)


# ---- the machine ------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": cpu_model(),
        "cores": cores,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_machine(title: str) -> dict[str, Any]:
    info = machine()
    print(f"# {title}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    return info


# ---- timing ----------------------------------------------------------------------------------------------------


def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device="cpu") -> tuple[float, Any]:
    """(seconds, result) of one call, with the device's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def best_of(repeats: int, fn: Callable[[], Any], device="cpu") -> float:
    """The fastest of `repeats` timed calls: on a shared machine the minimum is the least disturbed run."""
    return min(timed(fn, device)[0] for _ in range(repeats))


# ---- output ------------------------------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(value):
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    cells = [[fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2, default=str))
        print(f"json: {path}")


# ---- generated data ------------------------------------------------------------------------------------------------


def cifar_download(folder: Path, n_train: int, n_test: int = 100, seed: int = 0) -> Path:
    """A CIFAR-10 download (zip holding train.7z / test.7z of 32x32 PNGs) in `folder`; reused when present."""
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.samples import write_sample

    marker = folder / f".bench-{n_train}-{n_test}-{seed}"
    if not marker.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        write_sample(resolve("cifar10"), folder, n_train=n_train, n_test=n_test, seed=seed)
        marker.touch()
    return folder


def photo(rng: np.random.Generator, cls: int, width: int, height: int) -> np.ndarray:
    """A photo-like RGB image: smooth random colour fields (what JPEG sees in a dog photo), a class tint and
    mild sensor noise, so files decode at about the cost of real 500x375 JPEGs."""
    import cv2

    coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    detail = cv2.resize(rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8), (width, height))
    tint = np.array([(cls * 37) % 256, (cls * 91) % 256, (cls * 53) % 256], np.float32)
    image = 0.55 * image + 0.25 * detail + 0.2 * tint + rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def dog_folder(folder: Path, n_train: int, seed: int = 0, breeds: int | None = None) -> Path:
    """An unpacked Dog Breed download (labels.csv, sample_submission.csv, train/, test/) whose training
    images are full-size JPEGs (quality 90), 500x375 landscape with every fourth one 375x500 portrait (so the
    cache holds photos of two shapes, as the real one holds many); reused when present. `breeds` relabels the
    images over that many breeds only, so a few hundred images still give the real ~10% stratified validation
    split (spread over all 120 breeds they would be one or two per breed)."""
    import cv2

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.samples import write_sample

    marker = folder / f".bench-{n_train}-{seed}-{breeds}-mixed"
    if marker.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    staging = folder.parent / f".{folder.name}.zip-staging"
    shutil.rmtree(staging, ignore_errors=True)
    comp = resolve("dog_breed")
    zip_path = write_sample(comp, staging, n_train=n_train, n_test=8, seed=seed)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(folder)
    shutil.rmtree(staging)
    import pandas as pd

    keep = pd.read_csv(folder / "labels.csv", dtype=str)
    if breeds:
        keep["breed"] = [sorted(comp.declared_classes)[i % breeds] for i in range(len(keep))]
        keep.to_csv(folder / "labels.csv", index=False)
    classes = sorted(comp.declared_classes)
    rng = np.random.default_rng(seed)
    for n, (image_id, breed) in enumerate(zip(keep["id"], keep["breed"])):
        width, height = DOG_SIZE if n % 4 else DOG_SIZE[::-1]
        image = photo(rng, classes.index(breed), width, height)
        ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        (folder / "train" / f"{image_id}.jpg").write_bytes(data.tobytes())
    marker.touch()
    return folder


def class_tree(files: dict[str, Path], labels: dict[str, str], root: Path) -> Path:
    """`root/<class>/<file name>` symlinks to `files` (id -> path): the layout torchvision's ImageFolder reads."""
    if root.is_dir():
        return root
    staging = root.parent / f".{root.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    for image_id, path in files.items():
        target = staging / labels[image_id] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    staging.rename(root)
    return root


def extract_7z(archive: Path, dest: Path) -> Path:
    """py7zr `extractall` into `dest` (the baseline's first step)."""
    import py7zr

    with py7zr.SevenZipFile(archive, "r") as sz:
        sz.extractall(path=dest)
    return dest


# ---- training loops: kaggle-kit's and a plain one -------------------------------------------------------------------


class _NoBar:
    def advance(self, n: int = 1, postfix: str = "") -> None:
        pass


def synthetic_cache(folder: Path, n: int, size: tuple[int, int] | None, seed: int = 0):
    """An `ImageCache` of n random uint8 images: all `size` (h, w) when given (CIFAR-10's fixed 32x32), else
    photos pre-resized to a shorter side of 256 with the longer side varying (Dog Breed's cache)."""
    from kaggle_kit.data.cache import ImageCache

    rng = np.random.default_rng(seed)
    if size:
        shapes = np.tile(np.array([[size[0], size[1], 3]], np.int32), (n, 1))
    else:
        longer = rng.integers(256, 400, n)
        portrait = rng.random(n) < 0.25
        shapes = np.stack([np.where(portrait, longer, 256), np.where(portrait, 256, longer), np.full(n, 3)], 1).astype(
            np.int32
        )
    sizes = shapes.prod(1).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.memmap(folder / "pixels.u8", dtype=np.uint8, mode="w+", shape=(int(sizes.sum()),))
    step = 1 << 26
    for begin in range(0, len(pixels), step):
        end = min(begin + step, len(pixels))
        pixels[begin:end] = rng.integers(0, 256, end - begin, dtype=np.uint8)
    pixels.flush()
    del pixels
    return ImageCache(folder, [str(i) for i in range(n)], starts, shapes)


def build_model(arch: str, stem: str, classes: int, seed: int = 0):
    import torch

    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.models.factory import build_model as kit_build

    torch.manual_seed(seed)
    return kit_build(Recipe(arch=arch, stem=stem), classes)


def kit_engine(model, recipe, device, steps_per_epoch: int):
    """What `train.fit` sets up around a model: device, channels_last, fused optimizer, per-batch schedule,
    autocast dtype, grad scaler, EMA, torch.compile, cudnn.benchmark."""
    from types import SimpleNamespace

    import torch

    from kaggle_kit.training.device import autocast_dtype, set_backend_flags, use_channels_last
    from kaggle_kit.training.schedules import build_scheduler
    from kaggle_kit.training.setup import build_optimizer

    set_backend_flags(device)
    model = model.to(device)
    channels_last = use_channels_last(recipe, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe, device)
    scheduler = build_scheduler(optimizer, recipe, steps_per_epoch)
    dtype = autocast_dtype(device, recipe)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    ema = None
    if recipe.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema, device=device)
    train_model = torch.compile(model) if recipe.compile else model
    return SimpleNamespace(
        model=model,
        train_model=train_model,
        ema=ema,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        dtype=dtype,
        channels_last=channels_last,
        device=device,
        recipe=recipe,
    )


def kit_epoch(engine, batches, epoch: int = 0) -> tuple[float, int, float]:
    """(seconds, images, mean loss) of `train.epoch.train_one_epoch` over `batches`: the loop `fit` runs."""
    from kaggle_kit.training.epoch import train_one_epoch
    from kaggle_kit.training.hooks.ema import EmaUpdate
    from kaggle_kit.training.state import TrainState

    e = engine
    state = TrainState(e.model, e.train_model, e.optimizer, e.scheduler, e.scaler, e.ema, epoch=epoch)
    hooks = [EmaUpdate()] if e.ema is not None else []  # as `train.fit` adds it
    sync(engine.device)
    row = train_one_epoch(state, batches, (e.device, e.dtype, e.channels_last), e.recipe, _NoBar(), hooks)
    sync(engine.device)
    return row["seconds"], round(row["images_per_s"] * row["seconds"]), row["train_loss"]


def plain_setup(model, device, lr: float, momentum: float, weight_decay: float, nesterov: bool):
    """The plain eager fp32 baseline: the model as built (NCHW), torch's default SGD, no autocast."""
    import torch

    model = model.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )
    return model, optimizer


def plain_epoch(model, optimizer, batches, device) -> tuple[float, int]:
    """(seconds, images) of the textbook loop: forward, loss, zero_grad, backward, step."""
    import torch.nn.functional as F

    model.train()
    images = 0

    def run():
        nonlocal images
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            images += len(y)

    seconds, _ = timed(run, device)
    return seconds, images


def staged_batches(n_batches: int, batch_size: int, img_size: int, classes: int, device, seed: int = 0):
    """Normalised-looking float NCHW batches already on the device: the model-alone input."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch_size, 3, img_size, img_size, generator=generator)
        y = torch.randint(0, classes, (batch_size,), generator=generator)
        out.append((x.to(device), y.to(device)))
    return out


@contextlib.contextmanager
def augment_budget(**bytes_by_device):
    """`data.AUGMENT_BYTES` set for the block (e.g. cuda=0, cpu=0: one batch per augmentation call), then restored."""
    import kaggle_kit.data.datasets as data_module

    saved = dict(data_module.AUGMENT_BYTES)
    data_module.AUGMENT_BYTES.update(bytes_by_device)
    try:
        yield
    finally:
        data_module.AUGMENT_BYTES.clear()
        data_module.AUGMENT_BYTES.update(saved)


# ---- profiles ------------------------------------------------------------------------------------------------------


def profile_top(fn: Callable[[], Any], device, rows: int = 12) -> dict[str, Any]:
    """torch.profiler over one call of `fn`: the top device kernels by self time (CUDA only) and the top host
    operations by self CPU time (where the host spends or waits: cudaStreamSynchronize, copies, the DataLoader),
    plus the device's busy fraction of the profiled wall time (well under 1: the GPU waits on the host)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = str(device).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        fn()
        sync(device)
        wall_s = time.perf_counter() - started
    averages = prof.key_averages()

    def top(events, key: str) -> list[dict[str, Any]]:
        ranked = sorted(events, key=lambda e: getattr(e, key, 0) or 0, reverse=True)[:rows]
        return [{"name": e.key[:100], "calls": e.count, "self_ms": (getattr(e, key, 0) or 0) / 1000} for e in ranked]

    kernels = [e for e in averages if str(getattr(e, "device_type", "")).endswith(("CUDA", "PrivateUse1"))]
    device_busy_s = sum(getattr(e, "self_device_time_total", 0) or 0 for e in kernels) / 1e6
    host = [e for e in averages if e not in kernels]
    return {
        "wall_s": wall_s,
        "torch": torch.__version__,
        "device_busy_fraction": device_busy_s / wall_s if cuda and wall_s > 0 else None,
        "kernels": top(kernels, "self_device_time_total") if cuda else [],
        "host": top(host, "self_cpu_time_total"),
    }


def profile_table(profile: dict[str, Any], rows: int = 8) -> str:
    """The profile's top kernels and host operations as two small text tables."""
    parts = []
    if profile.get("device_busy_fraction") is not None:
        parts.append(f"device busy {profile['device_busy_fraction']:.0%} of {profile['wall_s']:.3f}s profiled")
    for name in ("kernels", "host"):
        if profile.get(name):
            parts.append(f"top {name} by self time:\n" + table(profile[name][:rows], ["name", "calls", "self_ms"]))
    return "\n".join(parts)
