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
colour, on a cluttered random background with sensor noise. Only the shape says the class. At 32 px both sides sit
at chance on it even at 1,400 images and 15 epochs. `--shape forms` draws the same ten forms larger (half to four
fifths of the image) on a background of a third the contrast: the bare loop reaches about 0.7 on 1,400 images in 8
epochs, so neither side sits at a bound and a gap can show. `--size` sets their images' side (e.g. 64).
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


def form_image(
    rng: np.random.Generator,
    cls: int,
    height: int,
    width: int,
    sides: tuple[float, float],
    clutter: float,
    noise: float,
) -> np.ndarray:
    """A class form (its side a fraction of the image in `sides`) in a random colour at a random place on a random
    background whose contrast is `clutter` (1 = full range), with Gaussian noise of `noise` grey levels."""
    import cv2

    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    image = 128 + clutter * (image - 128)
    low, high = max(6, int(height * sides[0])), max(7, int(height * sides[1]))
    side = int(rng.integers(low, high + 1))
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
    image += rng.normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


SHAPES = {  # what each `--shape` draws besides generated CIFAR's own colour-and-stripe classes
    "hard": {"sides": (0.2, 1 / 2.6), "clutter": 1.0, "noise": 16},
    "forms": {"sides": (0.5, 0.8), "clutter": 0.3, "noise": 6},
}


def shape_drawer(shape: str, size: int):
    """The image function the generated download uses instead of its own: `shape`'s forms at `size` px."""
    settings = SHAPES[shape]
    return lambda rng, cls, n_classes, height, width: form_image(rng, cls, size, size, **settings)


def kit(*args) -> str:
    from kaggle_kit.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exit:
        if exit.code:
            raise RuntimeError(f"kaggle-kit {' '.join(map(str, args))} exited {exit.code}") from None
    return ""


def kit_side(data: Path, work: Path, seed: int, epochs: int, arch: str | None, reuse: bool) -> tuple[Path, Path]:
    """kaggle-kit's submission with init's default recipe, and the run folder (`reuse`: a previous one's, when
    its submission is there)."""
    run, submission = work / f"kit-seed{seed}", work / f"kit-seed{seed}.csv"
    if reuse and submission.is_file() and (run / "split.json").is_file():
        return submission, run
    shutil.rmtree(run, ignore_errors=True)  # a rerun measures afresh
    extra = ["--arch", arch] if arch else []  # the image size is init's, from the images
    kit("train", "scratchbench", "--data-dir", data, "--out", run, "--seed", seed, "--epochs", epochs,
        "--device", "cpu", "--workers", "0", "--no-analyze", *extra)  # fmt: skip
    kit("predict", run, "--data-dir", data, "--out", submission)
    return submission, run


def hidden_rows(submission: Path, data: Path):
    """(metric, answers, the submission's one-hot rows for them): what the hidden split scores, in answers' order."""
    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.data.layout import open_layout
    from kaggle_kit.submissions.files import scored_rows

    comp = resolve("scratchbench")
    return scored_rows(submission, data / "answers.csv", comp, open_layout(comp, data).classes)


def bare_side(data: Path, run: Path, seed: int, epochs: int, arch: str) -> Path:
    """The hand-written loop on the kit run's training split; its argmax on the test images as a submission."""
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
    submission = run.with_name(f"bare-{run.name.removeprefix('kit-')}.csv")
    labels = [layout.classes[p] for p in predicted]
    pd.DataFrame({comp.id_column: test_cache.ids, comp.label_column: labels}).to_csv(submission, index=False)
    return submission


def summarise(n_train: int, seeds: list, metric) -> dict:
    """Both sides' mean hidden accuracy over the seeds, kaggle-kit's relative gap, and kit minus bare with its
    paired 95% bootstrap interval: the same hidden images resampled for both sides, each image with all its seeds'
    answers (the seeds share the images, so an image is one resampled group)."""
    from kaggle_kit.competitions.bootstrap import paired_difference

    kit_mean = float(np.mean([metric(truth, kit_rows) for truth, kit_rows, _ in seeds]))
    bare_mean = float(np.mean([metric(truth, bare_rows) for truth, _, bare_rows in seeds]))
    truth, kit_rows, bare_rows = (np.concatenate(parts) for parts in zip(*seeds))
    images = np.tile(np.arange(len(seeds[0][0])), len(seeds))
    difference = paired_difference(metric, truth, kit_rows, bare_rows, groups=images).interval
    return {
        "train_images": n_train, "seeds": len(seeds), "kit_mean": kit_mean, "bare_mean": bare_mean,
        "kit_behind_relative": (bare_mean - kit_mean) / max(bare_mean, 1e-9),
        "kit_minus_bare": difference.value, "low": difference.low, "high": difference.high,
        "hidden_images": difference.n,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sizes", default="400,1400", help="training images of each generated download")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shape", choices=["cifar", *SHAPES], default="cifar", help="the generated images (see above)")
    parser.add_argument("--size", type=int, default=32, help="image side in px of --shape hard/forms (cifar: 32)")
    parser.add_argument("--json")
    parser.add_argument(
        "--reuse-kit",
        action="store_true",
        help="keep kaggle-kit's runs and submissions already in --work; train the bare side",
    )
    args = parser.parse_args()
    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(args.work)
    os.environ.setdefault("XDG_CONFIG_HOME", str(work / "config"))  # init's declaration stays in the work folder
    os.environ.setdefault("KAGGLE_KIT_SUBMISSIONS_DIR", str(work / "submissions"))
    info = print_machine("from-scratch defaults vs a bare loop")
    seeds, epochs = (1, 1) if args.quick else (args.seeds, args.epochs)
    sizes = [90] if args.quick else [int(s) for s in args.sizes.split(",")]
    arch = "test_resnet" if args.quick else None
    if args.shape != "cifar":
        from kaggle_kit.competitions import samples

        # the generated download's layout, files and answers stay the kit's own; only what its images show changes
        samples._class_image = shape_drawer(args.shape, args.size)
    rows, hidden = [], {n_train: [] for n_train in sizes}
    for n_train in sizes:
        data = cifar_download(work / f"{args.shape}-{args.size}px-{n_train}", n_train, n_test=max(100, n_train // 2))
        kit("init", "cifar-10", "--data-dir", data, "--name", "scratchbench", "--metric", "accuracy", "--force")
        folder = work / f"{args.shape}-{args.size}px-n{n_train}"
        for seed in range(seeds):
            started, wall = time.perf_counter(), time.time()
            kit_file, run = kit_side(data, folder, seed, epochs, arch, args.reuse_kit)
            reused = run.stat().st_mtime < wall  # a previous run's: no seconds of its own
            kit_s = None if reused else time.perf_counter() - started
            started = time.perf_counter()
            bare_file = bare_side(data, run, seed, epochs, arch or "resnet18")
            bare_s = time.perf_counter() - started
            (metric, truth, kit_rows), (_, _, bare_rows) = hidden_rows(kit_file, data), hidden_rows(bare_file, data)
            hidden[n_train].append((truth, kit_rows, bare_rows))
            rows.append({
                "train_images": n_train, "seed": seed, "kit_accuracy": float(metric(truth, kit_rows)),
                "bare_accuracy": float(metric(truth, bare_rows)), "kit_s": kit_s, "bare_s": bare_s,
            })  # fmt: skip
            print(table(rows[-1:], list(rows[-1])), flush=True)
    summary = [summarise(n_train, hidden[n_train], metric) for n_train in sizes]
    print("\n" + table(summary, list(summary[0])))
    write_json(
        args.json,
        {"machine": info, "shape": args.shape, "size": args.size, "epochs": epochs, "rows": rows, "summary": summary},
    )


if __name__ == "__main__":
    main()
