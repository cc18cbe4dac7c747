"""Inference speed: predict's own path against a bare eager loop, and ONNX Runtime against torch eager.

    .venv/bin/python benchmarks/bench_engines.py [--quick] [--json benchmarks/results/engines.json]

1. predict vs a bare loop. `stream_logits` (what `kaggle-kit predict` runs: progress bar, views, logits gathered
   into one array) against the loop a competitor would write: the same uint8 cache sliced batch by batch,
   normalised, the same TTA views, the same model, batch and threads. Target: predict >= 0.95x the bare loop.
2. ONNX Runtime vs torch eager for resnet18 and resnet34 at 64, 128 and 224 px (batch 16, random weights, both
   on the same CPU threads): images/s of each, their ratio, and the largest probability difference.
3. Start-up of a packaged notebook's interpreter: `import torch` (what the notebook keeps, so both engines share
   one preprocessing path) against `import onnxruntime, numpy` alone.

Each pair is timed alternately, best of several repeats: on a shared machine the minimum is the least
disturbed run, and alternating keeps a slow spell from landing on one side only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import build_model, print_machine, synthetic_cache, table, write_json  # noqa: E402

CLASSES = 10


def bare_loop(model, cache, recipe, mean, std, views, batch_size: int) -> np.ndarray:
    """The loop a competitor writes by hand: slice, normalise, every view, average the logits."""
    import torch

    from kaggle_kit.inference.streaming import apply_view

    pixels = cache.uniform_array()
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(cache), batch_size):
            batch = torch.from_numpy(np.array(pixels[start : start + batch_size])).permute(0, 3, 1, 2)
            x = (batch.float().div_(255) - mean_t) / std_t
            out.append(sum(model(apply_view(x, view)) for view in views) / len(views))
    return torch.cat(out).numpy()


def predict_vs_bare(images: int, repeats: int, arch: str) -> dict:
    import torch

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.resolution import settle
    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.inference.streaming import stream_logits, tta_views
    from kaggle_kit.models.factory import normalization

    recipe = settle(resolve("cifar10"), Recipe(arch=arch, stem="imagenet", img_size=32, batch_size=128, device="cpu"))
    model = build_model(arch, "imagenet", CLASSES).eval()
    mean, std = normalization(model)
    views = tta_views(resolve("cifar10"), recipe)  # CIFAR-10 at its native size: flip and four shifts
    with tempfile.TemporaryDirectory() as scratch:
        cache = synthetic_cache(Path(scratch), images, (32, 32))
        order = np.arange(len(cache))
        kit, bare = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            ours = stream_logits(model, cache, order, recipe, mean, std, torch.device("cpu"), views, batch_path="array")
            kit.append(time.perf_counter() - started)
            started = time.perf_counter()
            theirs = bare_loop(model, cache, recipe, mean, std, views, recipe.batch_size * 2)
            bare.append(time.perf_counter() - started)
        difference = float(np.abs(ours.mean - theirs).max())
    return {
        "arch": arch,
        "images": images,
        "views": len(views),
        "predict_img_s": images / min(kit),
        "bare_img_s": images / min(bare),
        "ratio": min(bare) / min(kit),
        "max_logit_difference": difference,
    }


def onnx_vs_torch(arch: str, size: int, repeats: int, batch: int = 16) -> dict:
    import onnxruntime as ort
    import torch

    from kaggle_kit.competitions.metrics import softmax
    from kaggle_kit.inference.engines import _export_bytes

    model = build_model(arch, "imagenet", CLASSES).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(_export_bytes(model, size), options, providers=["CPUExecutionProvider"])
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32))
    with torch.inference_mode():
        expected = model(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    timings = {"torch": [], "onnx": []}
    for _ in range(repeats):
        started = time.perf_counter()
        with torch.inference_mode():
            model(x)
        timings["torch"].append(time.perf_counter() - started)
        started = time.perf_counter()
        session.run(None, {"images": x.numpy()})
        timings["onnx"].append(time.perf_counter() - started)
    torch_s, onnx_s = min(timings["torch"]), min(timings["onnx"])
    return {
        "arch": arch,
        "size": size,
        "torch_img_s": batch / torch_s,
        "onnx_img_s": batch / onnx_s,
        "onnx_over_torch": torch_s / onnx_s,
        "max_prob_difference": float(np.abs(softmax(expected, 1.0) - softmax(got, 1.0)).max()),
    }


def import_seconds(statement: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script runs (CI)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    info = print_machine("inference engines")
    repeats = 2 if args.quick else 5
    loop = predict_vs_bare(128 if args.quick else 2048, repeats, "test_resnet" if args.quick else "resnet18")
    print("\npredict (stream_logits) vs a bare eager loop, CIFAR-10-shaped 32 px, TTA views:")
    print(table([loop], list(loop)))
    archs = ["test_resnet"] if args.quick else ["resnet18", "resnet34"]
    sizes = [32] if args.quick else [64, 128, 224]
    rows = [onnx_vs_torch(arch, size, repeats) for arch in archs for size in sizes]
    print("\nONNX Runtime vs torch eager, CPU, batch 16:")
    print(table(rows, list(rows[0])))
    startup = {
        "import_torch_s": import_seconds("import torch", repeats),
        "import_onnxruntime_numpy_s": import_seconds("import onnxruntime, numpy", repeats),
    }
    print("\nnotebook interpreter start-up (best of", repeats, "):", startup)
    write_json(args.json, {"machine": info, "predict_vs_bare": loop, "onnx_vs_torch": rows, "startup": startup})


if __name__ == "__main__":
    main()
