"""From-scratch defaults against a bare loop: `init`'s recipe for small images vs the loop a competitor writes.

    .venv/bin/python benchmarks/bench_scratch.py --work /tmp/scratch [--seeds 3] [--epochs 15] [--json OUT]

For each generated CIFAR-10-shaped download (32 px; 400 and 1,400 training images, a hidden test split with its
answers), both sides train on the same images (kaggle-kit's own training split of the run) for the same epochs:
- kaggle-kit: `init` (a new competition from the zip, so the starter recipe is chosen from the images), then
  `train` with its default recipe and `--seed S`, `predict`, and the submission scored on the hidden answers;
- bare: timm resnet18 from scratch, AdamW lr 2e-3 weight decay 0.05, torch's OneCycleLR, batch 64, no
  augmentation, inputs normalised by the training pixels' mean/std, argmax on the hidden test images.
The table holds each side's hidden-test accuracy per seed, the means and kaggle-kit's relative gap (target: no
more than 2% behind). `--quick` (CI) runs one seed of one epoch on 90 images with `test_resnet` on both sides.

`--shape hard` draws the download's images so that neither side solves them in a few epochs (the generated
CIFAR's colour-and-stripe classes are separated perfectly by both, so a 2% gap could not show): each class is a
small shape (square, disk, cross, triangle, ring; solid or striped) 6-12 px across at a random place, in a random
colour, on a cluttered random background with sensor noise. Only the shape says the class.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import cifar_download, print_machine, table, write_json  # noqa: E402


def hard_class_image(rng: np.random.Generator, cls: int, n_classes: int, height: int, width: int) -> np.ndarray:
    """A small class shape in a random colour at a random place on clutter: what `--shape hard` draws."""
    import cv2

    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    side = int(rng.integers(max(6, height // 5), max(7, int(height / 2.6)) + 1))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    v, u = np.mgrid[0:side, 0:side].astype(np.float32) / (side - 1) * 2 - 1  # -1..1 across the shape
    radius = np.hypot(u, v)
    forms = [
        np.ones_like(u, bool),  # square
        radius <= 1,  # disk
        (np.abs(u) < 0.35) | (np.abs(v) < 0.35),  # cross
        v >= 2 * np.abs(u) - 1,  # triangle
        (radius <= 1) & (radius >= 0.55),  # ring
    ]
    mask = forms[cls % 5]
    if (cls // 5) % 2:  # the striped variant of the form
        mask = mask & (np.sin(u * 3 * np.pi) > 0)
    colour = rng.integers(0, 256, 3).astype(np.float32)
    patch = image[top : top + side, left : left + side]
    patch[mask] = 0.2 * patch[mask] + 0.8 * colour
    image += rng.normal(0, 16, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def kit(*args) -> str:
    from kaggle_kit.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit:
        if exit.code:
            raise RuntimeError(f"kaggle-kit {' '.join(map(str, args))} exited {exit.code}") from None
    return ""


def kit_side(data: Path, work: Path, seed: int, epochs: int, arch: str | None) -> tuple[float, Path]:
    """kaggle-kit's hidden-test accuracy with init's default recipe, and the run folder."""
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.submissions.files import score

    run, submission = work / f"kit-seed{seed}", work / f"kit-seed{seed}.csv"
    shutil.rmtree(run, ignore_errors=True)  # a rerun measures afresh
    extra = ["--arch", arch, "--img-size", "32"] if arch else []
    kit("train", "scratchbench", "--data-dir", data, "--out", run, "--seed", seed, "--epochs", epochs,
        "--device", "cpu", "--workers", "0", "--no-analyze", *extra)  # fmt: skip
    kit("predict", run, "--data-dir", data, "--out", submission)
    return score(submission, data / "answers.csv", resolve("scratchbench")), run


def bare_side(data: Path, run: Path, seed: int, epochs: int, arch: str) -> float:
    """The hand-written loop on the kit run's training split, scored on the same hidden test images."""
    import pandas as pd
    import timm
    import torch
    import torch.nn.functional as F

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.data.cache import load_images
    from kaggle_kit.data.layout import open_layout

    comp = resolve("scratchbench")
    layout = open_layout(comp, data)
    train_cache, test_cache = load_images(layout, "train"), load_images(layout, "test")
    val_ids = set(json.loads((run / "split.json").read_text())["val_ids"])
    keep = np.array([i for i, image_id in enumerate(train_cache.ids) if image_id not in val_ids])
    x = torch.from_numpy(np.array(train_cache.uniform_array())[keep]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(layout.train_labels[keep])
    mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=len(layout.classes))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = (len(x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=epochs * steps)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model((x[batch] - mean) / std), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    test = torch.from_numpy(np.array(test_cache.uniform_array())).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        predicted = torch.cat([model((b - mean) / std).argmax(1) for b in test.split(256)]).numpy()
    answers = pd.read_csv(data / "answers.csv", dtype=str).set_index("id")[comp.label_column]
    scored = [(p, answers[i]) for p, i in zip(predicted, test_cache.ids) if i in answers.index]  # CIFAR's decoys
    return float(np.mean([layout.classes[p] == truth for p, truth in scored]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sizes", default="400,1400", help="training images of each generated download")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shape", choices=["cifar", "hard"], default="cifar", help="the generated images (see above)")
    parser.add_argument("--json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(args.work)
    os.environ.setdefault("XDG_CONFIG_HOME", str(work / "config"))  # init's declaration stays in the work folder
    os.environ.setdefault("KAGGLE_KIT_SUBMISSIONS_DIR", str(work / "submissions"))
    info = print_machine("from-scratch defaults vs a bare loop")
    seeds, epochs = (1, 1) if args.quick else (args.seeds, args.epochs)
    sizes = [90] if args.quick else [int(s) for s in args.sizes.split(",")]
    arch = "test_resnet" if args.quick else None
    if args.shape == "hard":
        from kaggle_kit.competitions import samples

        # the generated download's layout, files and answers stay the kit's own; only what its images show changes
        samples._class_image = hard_class_image
    rows = []
    for n_train in sizes:
        data = cifar_download(work / f"{args.shape}-{n_train}", n_train, n_test=max(100, n_train // 2))
        kit("init", "cifar-10", "--data-dir", data, "--name", "scratchbench", "--metric", "accuracy", "--force")
        for seed in range(seeds):
            started = time.perf_counter()
            kit_accuracy, run = kit_side(data, work / f"n{n_train}", seed, epochs, arch)
            kit_s = time.perf_counter() - started
            started = time.perf_counter()
            bare_accuracy = bare_side(data, run, seed, epochs, arch or "resnet18")
            rows.append({
                "train_images": n_train, "seed": seed, "kit_accuracy": kit_accuracy,
                "bare_accuracy": bare_accuracy, "kit_s": kit_s, "bare_s": time.perf_counter() - started,
            })  # fmt: skip
            print(table(rows[-1:], list(rows[-1])), flush=True)
    summary = []
    for n_train in sizes:
        mine = [r for r in rows if r["train_images"] == n_train]
        kit_mean, bare_mean = np.mean([r["kit_accuracy"] for r in mine]), np.mean([r["bare_accuracy"] for r in mine])
        gap = (bare_mean - kit_mean) / max(bare_mean, 1e-9)
        summary.append({"train_images": n_train, "seeds": len(mine), "kit_mean": float(kit_mean),
                        "bare_mean": float(bare_mean), "kit_behind_relative": float(gap)})  # fmt: skip
    print("\n" + table(summary, list(summary[0])))
    write_json(args.json, {"machine": info, "shape": args.shape, "epochs": epochs, "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
