"""(c) How data-bound training is: epoch time with the real augmentation vs the model alone on pre-staged tensors.

    .venv/bin/python benchmarks/bench_databound.py [--cases cifar,dog,dog-workers] [--cifar-images 128]
        [--dog-images 32] [--json out.json]

Both epochs run kaggle-kit's loop (`train.epoch.train_one_epoch`, set up as `train.fit` sets it up) on the same
model; only the batches differ:
- real: `batches.Batches.train(epoch)`, exactly what `fit` iterates. `cifar`: the uint8 images resident on the
  device and augmented there in batches (`GpuAugment`, the `fast` recipe's flip + translate 4 + cutout 12);
  `dog`: the `best` recipe's random resized crop + flip + colour on photos pre-resized to a shorter side of
  256, resident on the device back to back (`RaggedImages`) and cropped there - both what the trainer picks
  on a GPU when the cache fits, forced with gpu_data=True so a CPU runs the same path; `dog-workers`: the same
  augmentation in persistent DataLoader workers (`EpochLoader`), the path for caches too large for the GPU;
- staged: the same number of batches, materialised beforehand on the device (the model alone).
ratio = real epoch time / staged epoch time: 1.00 means the data path costs nothing. Also timed: the data path
alone (every batch made, no model), its headroom over the model. The images are synthetic (random pixels)
with the real shapes; the cost of augmenting does not depend on the content.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_train import case_recipe, case_spec
from common import (
    augment_budget,
    build_model,
    kit_engine,
    kit_epoch,
    print_machine,
    profile_top,
    synthetic_cache,
    table,
    timed,
    write_json,
)


def compare_databound(
    case: str,
    device,
    n_images: int,
    batch_size: int,
    workers: int | None,
    warmup: int,
    repeats: int,
    folder: Path,
    compile: bool = False,
    profile: Callable[[dict], bool] | None = None,
    profile_steps: int = 5,
    arch_size: tuple[str, int] | None = None,
) -> list[dict]:
    """One row: the real epoch against the staged one. `profile(row)` true: `profile_steps` batches of the real
    epoch are run again under torch.profiler and the top kernels and host operations go in row["profile"].
    `arch_size`: (arch, img_size) in place of the case's own (bench_train.case_spec)."""
    import itertools

    import numpy as np

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.data.batches import Batches, Data
    from kaggle_kit.data.datasets import default_workers
    from kaggle_kit.models.factory import normalization

    model_case = case.removesuffix("-workers")
    comp_name, _, arch, stem, img_size, classes = case_spec(model_case, arch_size)
    comp = resolve(comp_name)
    recipe = case_recipe(model_case, device, batch_size, compile, arch_size=arch_size)
    # device-resident data is what `auto` picks on a GPU when the cache fits; forced so a CPU runs the same path
    recipe = recipe.replace(gpu_data=not case.endswith("-workers"))
    workers = default_workers(device, n_images) if workers is None else workers
    recipe = recipe.replace(workers=workers)
    cache = synthetic_cache(folder / case, n_images, (32, 32) if model_case == "cifar" else None)
    labels = np.random.default_rng(0).integers(0, classes, n_images)
    data = Data(cache, labels, np.arange(n_images), np.zeros(0, np.int64), cache.ids)
    model = build_model(arch, stem, classes)
    mean, std = normalization(model)
    steps = n_images // batch_size
    engine = kit_engine(model, recipe, device, steps_per_epoch=steps)
    batches = Batches(data, comp, recipe, device, mean, std)
    staged = [(x.to(device), y.to(device)) for x, y in batches.train(0)]  # the same shapes, made beforehand

    for _ in range(warmup):
        kit_epoch(engine, staged[:1])
    real, alone = [], []
    for epoch in range(repeats):
        alone.append(kit_epoch(engine, staged, epoch)[0])
        real.append(kit_epoch(engine, batches.train(epoch), epoch)[0])

    # the data path on its own (no model): how much headroom it has over the model; on the device-resident
    # path also with one batch per augmentation call (the baseline for GpuBatches' several batches per call)
    def data_alone_s() -> float:
        return min(timed(lambda e=epoch: [None for _ in batches.train(e)], device)[0] for epoch in range(repeats))

    data_alone = data_alone_s()
    one_per_call = None
    if batches.use_gpu_data:
        with augment_budget(cuda=0, cpu=0):
            one_per_call = data_alone_s()
    images = len(staged) * batch_size
    label = f"{arch}{' 3x3 stem' if stem == 'cifar' else ''} @{img_size}, batch {batch_size}"
    resident = "photos back to back" if not cache.is_uniform() else "uint8 array"
    path = f"GpuAugment, device-resident {resident}" if batches.use_gpu_data else f"EpochLoader, {workers} worker(s)"
    best_real, best_alone = min(real), min(alone)
    row = {
        "case": case,
        "model": label,
        "data": path,
        "images": images,
        "epoch_s_real_aug": best_real,
        "epoch_s_model_alone": best_alone,
        "images_per_s_real": images / best_real,
        "images_per_s_alone": images / best_alone,
        "data_alone_images_per_s": images / data_alone,
        "data_alone_one_batch_per_call_images_per_s": images / one_per_call if one_per_call else None,
        "ratio": best_real / best_alone,
    }
    if profile is not None and profile(row):
        row["profile"] = profile_top(
            lambda: kit_epoch(engine, itertools.islice(batches.train(repeats), profile_steps), repeats), device
        )
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="cifar,dog,dog-workers", help="comma-separated: cifar, dog, dog-workers")
    parser.add_argument("--cifar-images", type=int, default=128, help="images per epoch (a multiple of the batch)")
    parser.add_argument("--dog-images", type=int, default=32)
    parser.add_argument("--cifar-batch", type=int, default=32, help="GPU: 512")
    parser.add_argument("--dog-batch", type=int, default=8, help="GPU: 128-256")
    parser.add_argument(
        "--workers", type=int, default=None, help="Dog DataLoader workers (default: the trainer's rule)"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="epochs of each kind; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    from kaggle_kit.core import progress
    from kaggle_kit.training.device import resolve_device

    progress.enable(False)
    device = resolve_device(args.device)
    info = print_machine("(c) data-bound ratio: epoch with the real augmentation / epoch of the model alone")
    rows = []
    with tempfile.TemporaryDirectory(prefix="kaggle-kit-databound-") as folder:
        for case in args.cases.split(","):
            n, batch = (args.cifar_images, args.cifar_batch) if case == "cifar" else (args.dog_images, args.dog_batch)
            rows += compare_databound(case, device, n, batch, args.workers, args.warmup, args.repeats, Path(folder))
    print(
        table(
            rows,
            [
                "case",
                "model",
                "data",
                "images",
                "epoch_s_real_aug",
                "epoch_s_model_alone",
                "data_alone_images_per_s",
                "data_alone_one_batch_per_call_images_per_s",
                "ratio",
            ],
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "databound",
            "machine": info,
            "device": str(device),
            "args": vars(args),
            "rows": rows,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
