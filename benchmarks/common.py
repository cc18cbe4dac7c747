"""Shared pieces of the benchmarks: the machine description, timing, generated data, tables and JSON.

Every benchmark runs its baseline and kaggle-kit's path side by side in the same process (or the same
script), on the same data, and prints both absolute figures and their ratio. Data is generated: CIFAR-10
through `kaggle_kit.sample.write_sample` (the real download layout, 32x32 PNGs in 7z archives), Dog Breed
as full-size 500x375 JPEGs written here (the sample generator's photos are ~100 px, far cheaper to decode
than the real ones).
"""

from __future__ import annotations

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
    from kaggle_kit.competition import resolve
    from kaggle_kit.sample import write_sample

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


def dog_folder(folder: Path, n_train: int, seed: int = 0) -> Path:
    """An unpacked Dog Breed download (labels.csv, sample_submission.csv, train/, test/) whose training
    images are full-size 500x375 JPEGs (quality 90); reused when present."""
    import cv2

    from kaggle_kit.competition import resolve
    from kaggle_kit.sample import write_sample

    marker = folder / f".bench-{n_train}-{seed}"
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
    classes = sorted(comp.declared_classes)
    rng = np.random.default_rng(seed)
    width, height = DOG_SIZE
    for image_id, breed in zip(keep["id"], keep["breed"]):
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
