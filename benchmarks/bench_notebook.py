"""The packaged notebook's wall time, start to submission, for both engines, against the estimate `package` prints.

    .venv/bin/python benchmarks/bench_notebook.py [--quick] [--test-images N] [--json FILE]

1. A Dog Breed download generated with N hidden-test photos at the real size (500x375 JPEGs, every fourth one
   portrait, quality 90: they decode at about the cost of the real ones) and a resnet18 trained from scratch for
   one epoch at 64 px on small generated training photos (its accuracy is irrelevant; its inference cost is real).
2. For each engine (torch, onnx): `package` the run, then the runtime estimate `package` prints for N images
   (measured on this machine before the notebook runs), then the notebook run offline through the rehearsal path
   (`kaggle_kit.kaggle.rehearse.rehearse`: a fresh interpreter, Kaggle's input layout, no package index). Its wall
   time and each step's time from its log: install (pip installs the dataset's wheels), weights (`import torch`,
   best.pt rebuilt), predict (the test photos decoded into the cache, then streamed through the engine), validate.
   The rehearsal also checks the notebook's submission against `predict`'s.
3. Interpreter start-up apart: `import torch` against `import onnxruntime, numpy` in fresh interpreters.

Reported: measured / estimated for the whole notebook and for its predict step. `--quick` (test_resnet, 32 px, 40
test photos, the torch engine) only checks that the script runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_engines import import_seconds  # noqa: E402
from common import DOG_SIZE, photo, print_machine, table, write_json  # noqa: E402

WORK = Path(tempfile.gettempdir()) / "kaggle-kit-bench" / "notebook"  # generated photos and runs, reused


def hidden_test_download(folder: Path, n_train: int, n_test: int, full_size: bool) -> Path:
    """An unpacked Dog Breed download whose test photos are full-size JPEGs; reused when present."""
    import cv2

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.samples import write_sample

    marker = folder / f".bench-{n_train}-{n_test}-{full_size}"
    if marker.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    staging = folder.parent / f".{folder.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(write_sample(resolve("dog_breed"), staging, n_train=n_train, n_test=n_test)) as zf:
        zf.extractall(folder)
    shutil.rmtree(staging)
    rng = np.random.default_rng(0)
    for n, path in enumerate(sorted((folder / "test").glob("*.jpg")) if full_size else []):
        width, height = DOG_SIZE if n % 4 else DOG_SIZE[::-1]
        ok, data = cv2.imencode(".jpg", photo(rng, n % 120, width, height)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        path.write_bytes(data.tobytes())
    marker.touch()
    return folder


def trained_run(data: Path, out: Path, arch: str, size: int) -> Path:
    from kaggle_kit.training import train

    if not (out / "best.pt").is_file():
        shutil.rmtree(out, ignore_errors=True)
        train(
            "dog_breed", data, out=out, arch=arch, img_size=size, eval_resize=size, pretrained=False, freeze=False,
            unfreeze_after=None, epochs=1, batch_size=32, workers=0, device="cpu", tta="off",
        )  # fmt: skip
    return out


def one_engine(run: Path, data: Path, engine: str, test_images: int, work: Path) -> dict:
    """package, the estimate it prints, then the notebook rehearsed: its wall time and steps against the estimate."""
    from kaggle_kit.api.remote import package, runtime_estimate
    from kaggle_kit.kaggle.rehearse import rehearse

    made, _ = package(run, work / f"package-{engine}", "bench-user", False, False, data, engine=engine)
    estimate = runtime_estimate(run, data, test_images=test_images, engine=engine, device="cpu")
    print("\n".join(f"  [{engine}] {line}" for line in estimate.lines()), flush=True)
    started = time.perf_counter()
    done = rehearse(made.folder, data)
    total = time.perf_counter() - started  # the notebook, then predict's own file for the comparison
    steps = done.steps or {}
    (member,) = estimate.members
    inference_only = test_images / member.images_per_s + member.load_seconds  # what the estimate counted before
    return {
        "engine": engine,
        "images": done.rows,
        "estimate_s": round(estimate.seconds, 1),
        "inference_only_estimate_s": round(inference_only, 1),
        "startup_estimate_s": round(estimate.startup_seconds, 1),
        "decode_ms": round((estimate.decode_per_image or 0) * 1e3, 2),
        "notebook_s": round(done.seconds, 1),
        "notebook/estimate": round(done.seconds / estimate.seconds, 2),
        **{f"{step}_s": round(seconds, 1) for step, seconds in steps.items()},
        "notebook/inference_only": round(done.seconds / inference_only, 2),
        "estimate_img_s": round(member.images_per_s, 1),
        "notebook_img_s": round(done.rows / steps["predict"], 1) if steps.get("predict") else None,
        "max_difference": done.max_difference,
        "rehearsal_total_s": round(total, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, torch only: checks the script runs")
    parser.add_argument("--test-images", type=int, default=3000)
    parser.add_argument("--json")
    args = parser.parse_args()
    info = print_machine("the packaged notebook's wall time, both engines, against the runtime estimate")
    import torch

    info["torch_threads"] = torch.get_num_threads()
    images = 40 if args.quick else args.test_images
    work = WORK / ("quick" if args.quick else f"n{images}")
    data = hidden_test_download(work / "data", 240, images, full_size=not args.quick)
    arch, size = ("test_resnet", 32) if args.quick else ("resnet18", 64)
    run = trained_run(data, work / "run", arch, size)
    engines = ["torch"] if args.quick else ["torch", "onnx"]
    rows = [one_engine(run, data, engine, images, work) for engine in engines]
    print(f"\n{arch} at {size} px, {images:,} hidden test photos, TTA off, torch threads {info['torch_threads']}:")
    print(table(rows, list(rows[0])))
    repeats = 1 if args.quick else 3
    startup = {
        "import_torch_s": round(import_seconds("import torch", repeats), 2),
        "import_onnxruntime_numpy_s": round(import_seconds("import onnxruntime, numpy", repeats), 2),
    }
    print(f"\ninterpreter start-up (best of {repeats}): {startup}")
    write_json(args.json, {"machine": info, "arch": arch, "img_size": size, "rows": rows, "startup": startup})


if __name__ == "__main__":
    main()
