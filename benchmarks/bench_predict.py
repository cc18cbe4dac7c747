"""Predict throughput and peak memory on a CIFAR-10-shaped test set: streamed vs load-everything.

    .venv/bin/python benchmarks/bench_predict.py [--images 300000] [--arch test_resnet] [--threads 1]

A (N, 32, 32, 3) uint8 memory map is synthesised directly (random pixels; no PNG encoding), wrapped in
the same `ImageCache` the real test cache is, and predicted twice, each in its own child process so that
peak memory figures do not mix:

- streamed: `kaggle_kit.inference.streaming.stream_logits` - the code `kaggle-kit predict` runs - one batch of
  floats at a time from the memory map;
- naive: every image converted to one normalised float tensor (N x 3 x 32 x 32 float32, 3.7 GB for
  300,000 images), then predicted batch by batch from it.

Both use the same model, batch size, thread count and no TTA; the time includes building the float
tensor for the naive approach (a real part of its cost). Memory per process: the peak resident set
(`ru_maxrss`, which also counts pages of the memory-mapped file that were read and are shared page
cache the kernel can drop) and the peak of anonymous memory (RssAnon sampled every 20 ms: memory the
process itself allocated and the kernel cannot drop), each before and after predicting.

The default model is timm's `test_resnet` (0.37 M parameters): on a small CPU a real ResNet-18 would
take the whole time computing and hide the data path being measured. Pass `--arch resnet18` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SIDE = 32
CLASSES = 10


def synthesise(folder: Path, n: int, seed: int = 0) -> Path:
    """pixels.u8 holding n random 32x32 RGB images back to back, as the cache stores CIFAR-10."""
    path = folder / "pixels.u8"
    array = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n, SIDE, SIDE, 3))
    rng = np.random.default_rng(seed)
    step = 20_000
    for start in range(0, n, step):
        stop = min(start + step, n)
        array[start:stop] = rng.integers(0, 256, size=(stop - start, SIDE, SIDE, 3), dtype=np.uint8)
    array.flush()
    del array
    return path


class MemoryWatch:
    """Peak anonymous memory (RssAnon) of this process, sampled in a thread; ru_maxrss for the total."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_anon = self.anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def anon() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_anon = max(self.peak_anon, self.anon())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_anon = max(self.peak_anon, self.anon())


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(args: argparse.Namespace) -> dict:
    """One approach in this process; prints a JSON line with its figures."""
    import torch

    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.data.cache import ImageCache
    from kaggle_kit.inference.streaming import stream_logits
    from kaggle_kit.models import factory as models

    torch.set_num_threads(args.threads)
    n = args.images
    recipe = Recipe(arch=args.arch, stem=args.stem, img_size=SIDE, batch_size=args.batch_size, device=args.device)
    torch.manual_seed(0)  # both children build the same random weights, so their logits can be compared
    model = models.build_model(recipe, CLASSES).eval()
    device = torch.device(args.device)
    model.to(device)
    mean, std = models.normalization(model)
    cache = ImageCache(
        path=Path(args.folder),
        ids=[str(i) for i in range(1, n + 1)],
        starts=np.arange(n, dtype=np.int64) * SIDE * SIDE * 3,
        shapes=np.tile([SIDE, SIDE, 3], (n, 1)),
    )
    with torch.inference_mode():  # warm-up: first-call allocations are not the approach's cost
        model(torch.zeros(args.batch_size, 3, SIDE, SIDE, device=device))
    before = {"max_rss": max_rss(), "anon": MemoryWatch.anon()}

    with MemoryWatch() as watch:
        started = time.perf_counter()
        if args.approach == "streamed":
            logits = stream_logits(
                model, cache, np.arange(n), recipe, mean, std, device, batch_size=args.batch_size, batch_path="array"
            ).mean
        else:
            pixels = torch.from_numpy(np.array(cache.uniform_array()))  # every image, as uint8
            images = pixels.permute(0, 3, 1, 2).float().div_(255)  # ... and all of them as floats
            del pixels
            images.sub_(torch.tensor(mean).view(1, 3, 1, 1)).div_(torch.tensor(std).view(1, 3, 1, 1))
            out = []
            with torch.inference_mode():
                for start in range(0, n, args.batch_size):
                    out.append(model(images[start : start + args.batch_size].to(device)).float().cpu())
            logits = torch.cat(out).numpy()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    assert logits.shape == (n, CLASSES)
    return {
        "approach": args.approach,
        "images": n,
        "seconds": seconds,
        "images_per_s": n / seconds,
        "peak_rss": max_rss(),
        "peak_anon": watch.peak_anon,
        "rss_before": before["max_rss"],
        "anon_before": before["anon"],
        "checksum": float(np.abs(logits).sum()),
    }


def gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300_000, help="test images (CIFAR-10's test set: 300,000)")
    parser.add_argument(
        "--arch", default="test_resnet", help="timm model (default: a tiny ResNet, so the data path dominates)"
    )
    parser.add_argument("--stem", default="imagenet", choices=["imagenet", "cifar"])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--approach", choices=["streamed", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.approach:  # a child: measure one approach
        print(json.dumps(child(args)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as folder:
        started = time.perf_counter()
        synthesise(Path(folder), args.images)
        print(
            f"synthesised {args.images:,} images of {SIDE}x{SIDE}x3 uint8 ({gib(args.images * SIDE * SIDE * 3)}) "
            f"in {time.perf_counter() - started:.1f}s; model {args.arch} (stem {args.stem}), batch {args.batch_size}, "
            f"{args.threads} thread(s), {args.device}, no TTA"
        )
        results = {}
        for approach in ("streamed", "naive"):
            command = [
                sys.executable,
                __file__,
                "--approach",
                approach,
                "--folder",
                folder,
                "--images",
                str(args.images),
                "--arch",
                args.arch,
                "--stem",
                args.stem,
                "--batch-size",
                str(args.batch_size),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
            ]
            done = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            )
            if done.returncode != 0:
                print(f"{approach}: failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
                results[approach] = None
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[approach] = result
            print(
                f"{approach:>8}: {result['images_per_s']:>9,.0f} images/s ({result['seconds']:.1f}s) | "
                f"peak anonymous memory {gib(result['peak_anon'])} (before predicting {gib(result['anon_before'])}) | "
                f"peak RSS incl. mapped file pages {gib(result['peak_rss'])} (before {gib(result['rss_before'])})"
            )
        streamed, naive = results.get("streamed"), results.get("naive")
        if streamed and naive:
            grow_s = streamed["peak_anon"] - streamed["anon_before"]
            grow_n = naive["peak_anon"] - naive["anon_before"]
            print(
                f"   ratio: streamed is {streamed['images_per_s'] / naive['images_per_s']:.2f}x the naive throughput; "
                f"naive needs {naive['peak_anon'] / streamed['peak_anon']:.1f}x the peak anonymous memory "
                f"(growth while predicting: {gib(grow_n)} vs {gib(grow_s)}, {grow_n / max(grow_s, 1):.0f}x)"
            )
            if not np.isclose(streamed["checksum"], naive["checksum"], rtol=1e-4):
                print(
                    f"warning: the two approaches' logits differ "
                    f"(checksums {streamed['checksum']:.6g} vs {naive['checksum']:.6g})"
                )


if __name__ == "__main__":
    main()
