"""(b) Training images/s: kaggle-kit's loop vs a plain eager fp32 PyTorch loop, same model, data and batch.

    .venv/bin/python benchmarks/bench_train.py [--cases cifar,dog] [--steps 3] [--compile] [--ema 0.999]
        [--json out.json]

Both loops train the same freshly built model (one copy each) on the same pre-staged batches already on the
device, so only the loop differs:
- kaggle-kit: `train.epoch.train_one_epoch` with what `train.fit` sets up (`common.kit_engine`): bf16 autocast,
  channels_last, fused SGD and cudnn.benchmark on CUDA, the recipe's per-batch schedule and label smoothing,
  optional EMA and torch.compile;
- plain: forward, cross-entropy, zero_grad, backward, torch.optim.SGD step, in fp32 and NCHW.
Cases: CIFAR-10 ResNet-18 with the 3x3 stem at 32x32 (the `fast` recipe), Dog Breed ResNet-34 at 224x224
(the `best` recipe's optimiser, fully trainable). After warm-up steps, the loops alternate and each
reports its best of `--repeats` epochs. On a CPU autocast and channels_last are off by design (they slow
CPU convolutions down), so the two loops should be about equal there; the gains are GPU gains (gpu_check.py).
"""

from __future__ import annotations

import argparse
import copy
import time

from common import (
    build_model,
    kit_engine,
    kit_epoch,
    plain_epoch,
    plain_setup,
    print_machine,
    staged_batches,
    table,
    write_json,
)

CASES = {
    # name: (competition, recipe, arch, stem, img_size, classes)
    "cifar": ("cifar10", "fast", "resnet18", "cifar", 32, 10),
    "dog": ("dog_breed", "best", "resnet34", "imagenet", 224, 120),
}


def case_spec(case: str, arch_size: tuple[str, int] | None = None) -> tuple:
    """CASES[case], with `arch_size` (arch, img_size) in place of the case's own: gpu_check --quick runs the same
    path with a tiny model, since a ResNet-34 at 224 costs a CPU a minute and no smoke check reads the figures."""
    comp_name, recipe_name, arch, stem, img_size, classes = CASES[case]
    if arch_size:
        arch, img_size = arch_size
    return comp_name, recipe_name, arch, stem, img_size, classes


def case_recipe(
    case: str,
    device,
    batch_size: int,
    compile: bool = False,
    ema: float | None = None,
    arch_size: tuple[str, int] | None = None,
):
    from kaggle_kit.competitions.registry import resolve

    comp_name, recipe_name, arch, stem, img_size, _ = case_spec(case, arch_size)
    base = resolve(comp_name).recipe(recipe_name)
    # fully trainable, no pretrained download: throughput does not depend on the weights
    from kaggle_kit.competitions.resolution import settle

    recipe = base.replace(
        arch=arch,
        stem=stem,
        img_size=img_size,
        batch_size=batch_size,
        device=str(device),
        compile=compile,
        ema=ema,
        pretrained=False,
        freeze=False,
        unfreeze_after=None,
    )
    return settle(resolve(comp_name), recipe)  # the sizes a run derives (eval resize, cache side, val batch), as train


def compare_train(
    case: str,
    device,
    batch_size: int,
    steps: int,
    warmup: int,
    repeats: int,
    compile: bool = False,
    ema: float | None = None,
    arch_size: tuple[str, int] | None = None,
) -> list[dict]:
    """Rows for the plain loop and kaggle-kit's loop on `steps` staged batches of `case` (`arch_size`: case_spec)."""
    _, _, arch, stem, img_size, classes = case_spec(case, arch_size)
    recipe = case_recipe(case, device, batch_size, compile, ema, arch_size)
    model = build_model(arch, stem, classes)
    baseline_model = copy.deepcopy(model)
    batches = staged_batches(steps, batch_size, img_size, classes, device)
    engine = kit_engine(model, recipe, device, steps_per_epoch=steps)
    plain_model, plain_optimizer = plain_setup(
        baseline_model, device, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.nesterov
    )
    for _ in range(warmup):  # compilation, cudnn autotuning, allocator growth
        kit_epoch(engine, batches[:1])
        plain_epoch(plain_model, plain_optimizer, batches[:1], device)
    kit_seconds, plain_seconds, images = [], [], steps * batch_size
    for _ in range(repeats):
        plain_seconds.append(plain_epoch(plain_model, plain_optimizer, batches, device)[0])
        kit_seconds.append(kit_epoch(engine, batches)[0])
    plain_rate, kit_rate = images / min(plain_seconds), images / min(kit_seconds)
    features = [
        f"autocast {str(engine.dtype).replace('torch.', '') if engine.dtype else 'off'}",
        f"channels_last {'on' if engine.channels_last else 'off'}",
        f"fused {'on' if engine.optimizer.defaults.get('fused') else 'off'}",
    ]
    if compile:
        features.append("compile")
    if ema:
        features.append(f"ema {ema}")
    label = f"{arch}{' 3x3 stem' if stem == 'cifar' else ''} @{img_size}, batch {batch_size}"
    return [
        {
            "case": case,
            "model": label,
            "loop": "plain eager fp32",
            "images": images,
            "images_per_s": plain_rate,
            "ratio": 1.0,
        },
        {
            "case": case,
            "model": label,
            "loop": "kaggle-kit (" + ", ".join(features) + ")",
            "images": images,
            "images_per_s": kit_rate,
            "ratio": kit_rate / plain_rate,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="cifar,dog", help="comma-separated: cifar, dog")
    parser.add_argument("--cifar-batch", type=int, default=64, help="images per batch for CIFAR-10 (GPU: 512)")
    parser.add_argument("--dog-batch", type=int, default=8, help="images per batch for Dog (GPU: 128-256)")
    parser.add_argument("--steps", type=int, default=3, help="timed batches per epoch")
    parser.add_argument("--warmup", type=int, default=1, help="untimed single-batch steps first")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per loop; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile kaggle-kit's model")
    parser.add_argument("--ema", type=float, default=None, help="EMA decay for kaggle-kit's loop")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    import torch

    from kaggle_kit.training.device import resolve_device

    device = resolve_device(args.device)
    info = print_machine("(b) training images/s: kaggle-kit's loop vs a plain eager fp32 loop")
    print(
        f"device {device}, {args.steps} batches per epoch, best of {args.repeats}, "
        f"torch threads {torch.get_num_threads()}"
    )
    rows = []
    for case in args.cases.split(","):
        batch = args.cifar_batch if case == "cifar" else args.dog_batch
        rows += compare_train(case, device, batch, args.steps, args.warmup, args.repeats, args.compile, args.ema)
    print(table(rows, ["case", "model", "loop", "images", "images_per_s", "ratio"]))
    write_json(
        args.json,
        {
            "benchmark": "train",
            "machine": info,
            "device": str(device),
            "args": vars(args),
            "rows": rows,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
