"""How many batches `GpuBatches` augments per call: images/s of the GPU data path alone for several budgets of
float output per call, against one batch per call (the baseline), on one device.

    .venv/bin/python benchmarks/bench_augment_calls.py [--images 5000] [--batch 256] [--device auto] [--json out.json]

Synthetic CIFAR-10-shaped uint8 images resident on the device, the study's augmentation (resize 40, random
resized crop 32, flip) and the `fast` recipe's (flip, translate 4, cutout 12). The budget the kit uses is
`data.AUGMENT_BYTES[device type]`; this script is what chose the CPU value (one batch per call), and
gpu_check.py runs it on the GPU (50,000 images, batch 512).
"""

from __future__ import annotations

import argparse
import time

from common import augment_budget, print_machine, table, timed, write_json

BUDGETS_MB = (0, 4, 16, 64, 256)  # 0: one batch per call


def measure(device, n_images: int, batch: int, repeats: int) -> list[dict]:
    import numpy as np
    import torch

    import kaggle_kit.data.datasets as data_module
    from kaggle_kit.config.recipe import AugmentSpec
    from kaggle_kit.data.gpu_augment import GpuAugment

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (n_images, 32, 32, 3), dtype=np.uint8)).to(device)
    labels = torch.zeros(n_images, dtype=torch.long, device=device)
    specs = {
        "study": AugmentSpec(pre_resize=40, crop_scale=(0.64, 1.0), crop_ratio=(1.0, 1.0), hflip=True),
        "fast": AugmentSpec(hflip=True, translate=4, cutout=12),
    }
    kit_budget = data_module.augment_bytes(device.type)
    rows = []
    for name, spec in specs.items():
        augment = GpuAugment(spec, 32, (0.5,) * 3, (0.25,) * 3)
        baseline = None
        for budget in sorted({*(mb << 20 for mb in BUDGETS_MB), kit_budget}):
            with augment_budget(**{device.type: budget}):
                batches = data_module.GpuBatches(images, labels, rng.permutation(n_images), batch, augment)
                [None for _ in batches]  # warm-up: allocator, kernels
                seconds = min(timed(lambda batches=batches: [None for _ in batches], device)[0] for _ in range(repeats))
                per_call = batches.batches_per_call()
            rate = n_images / seconds
            baseline = baseline or rate
            rows.append(
                {
                    "aug": name,
                    "budget_mb": budget / 2**20,
                    "batches_per_call": per_call,
                    "images_per_s": rate,
                    "ratio": rate / baseline,
                    "kit_default": budget == kit_budget,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="epochs per budget; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    import torch

    from kaggle_kit.training.device import resolve_device

    torch.set_num_threads(1)
    device = resolve_device(args.device)
    info = print_machine("augmentation calls: images/s of the GPU data path alone by float output per call")
    rows = measure(device, args.images, args.batch, args.repeats)
    print(table(rows, COLUMNS))
    write_json(
        args.json,
        {
            "benchmark": "augment_calls",
            "machine": info,
            "device": str(device),
            "args": vars(args),
            "rows": rows,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


COLUMNS = ["aug", "budget_mb", "batches_per_call", "images_per_s", "ratio", "kit_default"]


if __name__ == "__main__":
    main()
