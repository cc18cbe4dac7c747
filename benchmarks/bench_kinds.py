"""Training images/s per target kind: kaggle-kit's loop vs a bare loop with the same head, loss and optimizer.

    .venv/bin/python benchmarks/bench_kinds.py [--kinds label,multilabel,regression,ordinal,topk] [--steps 4]
        [--batch 64] [--arch resnet18] [--img-size 32] [--quick] [--json out.json]

Issue 28's goal: a label set, value, grade or ranking trains no more than 5% slower than a bare loop with the
same head and loss. Both loops train copies of one freshly built model (the kind's head size: one output for
values and grades, one per label or class otherwise) on the same pre-staged batches already on the device, so
only the loop differs:
- kaggle-kit: `training.epoch.train_one_epoch` with the kind passed as `target` and what `train.fit` sets up
  (`common.kit_engine`: autocast, channels_last, fused SGD and cudnn.benchmark on CUDA, the per-batch schedule);
- bare: forward, the kind's own loss (`TargetKind.loss`: BCE on sigmoid outputs, MSE on values and grades,
  cross-entropy over the known classes), zero_grad, backward, torch.optim.SGD step, fp32 and NCHW.
After warm-up steps the loops alternate; each reports its best of `--repeats` epochs. On a CPU autocast and
channels_last are off by design, so the loops should be about equal there. `--quick`: a tiny model and one
step, a smoke check of the script (seconds), whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import time

from common import build_model, kit_engine, plain_setup, print_machine, sync, table, timed, write_json

LABELS = 6  # labels of a label set, classes of a single label or a ranking


def kind_of(name: str):
    from kaggle_kit.competitions.targets import MultiLabel, Ordinal, Regression, TargetKind, TopK

    return {
        "label": TargetKind(),
        "multilabel": MultiLabel(form="set"),
        "regression": Regression(value_range=(1.0, 100.0)),
        "ordinal": Ordinal(n_grades=5),
        "topk": TopK(k=5, new_class="new_whale"),
    }[name]


def staged(kind_name: str, steps: int, batch: int, img_size: int, device, seed: int = 0):
    """(images, truths) batches on the device, truths in the kind's training form (what target_labels reads)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(steps):
        x = torch.randn(batch, 3, img_size, img_size, generator=generator)
        if kind_name == "multilabel":
            y = (torch.rand(batch, LABELS, generator=generator) < 0.35).float()
        elif kind_name == "regression":  # unit scale: raw 1-100 values diverge at the recipe's lr 0.2 (see RESULTS)
            y = torch.randn(batch, generator=generator)
        elif kind_name == "ordinal":
            y = torch.randint(0, 5, (batch,), generator=generator).float()
        else:  # label, topk (index LABELS: the new class, which trains nothing)
            y = torch.randint(0, LABELS + (kind_name == "topk"), (batch,), generator=generator)
        batches.append((x.to(device), y.to(device)))
    return batches


def kit_epoch(engine, batches, kind) -> float:
    from types import SimpleNamespace

    from kaggle_kit.training.epoch import train_one_epoch
    from kaggle_kit.training.state import TrainState

    e = engine
    state = TrainState(e.model, e.train_model, e.optimizer, e.scheduler, e.scaler, e.ema, epoch=0)
    bar = SimpleNamespace(advance=lambda *a, **k: None)
    sync(e.device)
    row = train_one_epoch(state, batches, (e.device, e.dtype, e.channels_last), e.recipe, bar, target=kind)
    sync(e.device)
    return row["seconds"]


def bare_epoch(model, optimizer, batches, kind, device) -> float:
    """The textbook loop with the kind's loss (cross-entropy for one label, as a bare loop writes it)."""
    import torch.nn.functional as F

    loss_of = kind.loss if kind.name != "label" else (lambda logits, y: F.cross_entropy(logits, y))
    model.train()

    def run():
        for x, y in batches:
            loss = loss_of(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return timed(run, device)[0]


def compare(kind_name: str, device, args) -> dict:
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.resolution import settle

    kind = kind_of(kind_name)
    outputs = kind.head_size([str(c) for c in range(LABELS)])
    base = resolve("cifar10").recipe("fast")
    recipe = settle(
        resolve("cifar10"),
        base.replace(arch=args.arch, stem="cifar", img_size=args.img_size, batch_size=args.batch, device=str(device)),
    )
    model = build_model(args.arch, "cifar", outputs)
    bare_model, bare_optimizer = plain_setup(
        copy.deepcopy(model), device, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.nesterov
    )
    engine = kit_engine(model, recipe, device, steps_per_epoch=args.steps)
    batches = staged(kind_name, args.steps, args.batch, args.img_size, device)
    for _ in range(args.warmup):
        kit_epoch(engine, batches[:1], kind)
        bare_epoch(bare_model, bare_optimizer, batches[:1], kind, device)
    bare, kit = [], []
    for _ in range(args.repeats):
        bare.append(bare_epoch(bare_model, bare_optimizer, batches, kind, device))
        kit.append(kit_epoch(engine, batches, kind))
    images = args.steps * args.batch
    bare_rate, kit_rate = images / min(bare), images / min(kit)
    return {
        "kind": kind_name,
        "outputs": outputs,
        "images": images,
        "bare_images_per_s": bare_rate,
        "kit_images_per_s": kit_rate,
        "ratio": kit_rate / bare_rate,
        "within_5pct": kit_rate >= 0.95 * bare_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default="label,multilabel,regression,ordinal,topk")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed batches per epoch")
    parser.add_argument("--warmup", type=int, default=1, help="untimed single-batch steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per loop; the best counts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="test_resnet at 16 px, one 8-image step: a smoke check")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()
    if args.quick:
        args.arch, args.img_size, args.batch, args.steps, args.repeats, args.warmup = "test_resnet", 16, 8, 1, 1, 0

    import torch

    from kaggle_kit.training.device import resolve_device

    device = resolve_device(args.device)
    info = print_machine("training images/s per target kind: kaggle-kit's loop vs a bare loop, same head and loss")
    print(f"device {device}, {args.arch} @{args.img_size}, batch {args.batch}, {args.steps} batches, best of "
          f"{args.repeats}, torch threads {torch.get_num_threads()}")  # fmt: skip
    rows = [compare(name, device, args) for name in args.kinds.split(",")]
    print(table(rows, ["kind", "outputs", "images", "bare_images_per_s", "kit_images_per_s", "ratio", "within_5pct"]))
    payload = {"benchmark": "kinds", "machine": info, "device": str(device), "args": vars(args), "rows": rows}
    write_json(args.json, {**payload, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})


if __name__ == "__main__":
    main()
