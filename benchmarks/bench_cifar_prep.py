"""(e) CIFAR-10 test-set preparation: straight from test.7z (kaggle-kit) vs extract-then-read.

    .venv/bin/python benchmarks/bench_cifar_prep.py [--images 20000] [--repeats 2] [--json out.json]

The test set is a solid 7z archive of 32x32 PNGs (300,000 on Kaggle; generated here by
`kaggle_kit.competitions.samples.write_sample` in the real layout). Both sides end with every image decoded into one
uint8 (N, 32, 32, 3) array in id order, decoded by the same OpenCV call:
- extract-then-read (baseline): py7zr `extractall` to a folder on disk, then read and decode each PNG file;
- kaggle-kit: `cache.load_images(layout, "test")` - py7zr decompresses member by member in a thread, never
  touching disk, while a bounded process pool decodes chunks of 256 images and the result is written
  into a memory-mapped cache (the form the predictor reads).
Runs alternate; each side reports its best of `--repeats`. The baseline's files are deleted after each run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import cifar_download, extract_7z, print_machine, table, timed, write_json


def extract_then_read(layout, workdir: Path):
    """The baseline: (extract seconds, decode seconds, array)."""
    import cv2
    import numpy as np

    folder = workdir / "extracted"
    extract_seconds, _ = timed(lambda: extract_7z(layout.test.source, folder))

    def read_all():
        images = np.empty((len(layout.test.ids), 32, 32, 3), np.uint8)
        for n, image_id in enumerate(layout.test.ids):
            image = cv2.imread(str(folder / layout.test.member(image_id)), cv2.IMREAD_COLOR)
            images[n] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return images

    decode_seconds, images = timed(read_all)
    shutil.rmtree(folder)
    return extract_seconds, decode_seconds, images


def kit_prepare(layout):
    from kaggle_kit.data.cache import cache_dir, load_images

    shutil.rmtree(cache_dir(layout, "test", None), ignore_errors=True)
    seconds, cache = timed(lambda: load_images(layout, "test"))
    return seconds, cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000, help="test images in test.7z (Kaggle: 300000)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kaggle-kit-bench"), help="generated data (reused)")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    import numpy as np

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.core import progress
    from kaggle_kit.data.layout import open_layout

    progress.enable(False)
    info = print_machine("(e) CIFAR-10 test-set preparation: straight from the 7z archive vs extract-then-read")
    layout = open_layout(resolve("cifar10"), cifar_download(args.work / f"cifar-test-{args.images}", 100, args.images))
    archive_mb = layout.test.source.stat().st_size / 1e6
    print(f"{len(layout.test.ids)} PNGs in {layout.test.source.name} ({archive_mb:.1f} MB), best of {args.repeats}")

    baseline, kit = [], []
    with tempfile.TemporaryDirectory(prefix="kaggle-kit-prep-", dir=args.work) as workdir:
        for _ in range(args.repeats):
            baseline.append(extract_then_read(layout, Path(workdir)))
            kit.append(kit_prepare(layout))
    extract_s, decode_s, reference = min(baseline, key=lambda r: r[0] + r[1])
    kit_s, cache = min(kit, key=lambda r: r[0])
    identical = bool(np.array_equal(np.asarray(cache.uniform_array()), reference))
    n = len(layout.test.ids)
    rows = [
        {
            "path": "extract-then-read (py7zr extractall, then cv2 per file)",
            "seconds": extract_s + decode_s,
            "extract_s": extract_s,
            "decode_s": decode_s,
            "images_per_s": n / (extract_s + decode_s),
            "ratio": 1.0,
        },
        {
            "path": "kaggle-kit load_images (streamed 7z + decode pool)",
            "seconds": kit_s,
            "extract_s": "",
            "decode_s": "",
            "images_per_s": n / kit_s,
            "ratio": (extract_s + decode_s) / kit_s,
        },
    ]
    print(table(rows, ["path", "seconds", "extract_s", "decode_s", "images_per_s", "ratio"]))
    print(f"same pixels on both sides: {identical}")
    write_json(
        args.json,
        {
            "benchmark": "cifar_prep",
            "machine": info,
            "images": n,
            "archive_mb": archive_mb,
            "rows": rows,
            "identical": identical,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
