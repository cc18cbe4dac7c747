"""(d) Frozen-backbone Dog Breed fine-tuning for 10 epochs: cached backbone features vs recomputing them.

    .venv/bin/python benchmarks/bench_frozen.py [--images 160] [--views 2] [--arch resnet34] [--json out.json]

Three complete `kaggle_kit.training.train` runs of the study's fine-tuning recipe (`dog_breed` `paper`: frozen
ResNet-34, Linear-ReLU-Linear head, 224x224 crops of the cache pre-resized to 256, the study's augmentation,
10 epochs), on the same generated full-size 500x375 JPEGs (10% stratified validation split):
- recompute: feature_cache_views=0 - every epoch runs the frozen backbone over every training image
  (augmented) and every validation image, as plain frozen training does;
- cached, cold: feature_cache_views=K - the backbone runs once over K augmented views of the training images
  and once over the validation images, then 10 head-only epochs; the features are written to the data's
  work folder;
- cached, warm: the same run again, reading the features back from disk.
Times are whole runs (model build, data, features, epochs, validation, checkpoints, history, plots), so
the per-epoch bookkeeping every run shares is included. The image cache is built before timing, since
all three reuse it. No pretrained download: the backbone's weights do not change the cost.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import dog_folder, print_machine, table, timed, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=160, help="full-size training JPEGs to generate")
    parser.add_argument("--breeds", type=int, default=16, help="breeds they are spread over")
    parser.add_argument("--views", type=int, default=2, help="K: augmented views cached per training image")
    parser.add_argument("--arch", default="resnet34")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the trainer's rule)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kaggle-kit-bench"), help="generated data (reused)")
    parser.add_argument("--json", help="write the results here as JSON")
    args = parser.parse_args()

    from kaggle_kit.competitions.registry import resolve
    from kaggle_kit.competitions.resolution import settle
    from kaggle_kit.core import progress
    from kaggle_kit.data.cache import load_images
    from kaggle_kit.data.layout import open_layout
    from kaggle_kit.training import train

    progress.enable(False)
    # imports the runs share (timm, matplotlib) happen here, not inside whichever run comes first
    import matplotlib

    import kaggle_kit.models.factory  # noqa: F401

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    info = print_machine("(d) frozen-backbone Dog fine-tuning: cached features vs recomputing every epoch")
    comp = resolve("dog_breed")
    recipe = comp.recipe("paper").replace(
        arch=args.arch,
        pretrained=False,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
    )
    folder = dog_folder(args.work / f"dog-{args.images}-b{args.breeds}", args.images, breeds=args.breeds)
    layout = open_layout(comp, folder)
    load_images(layout, "train", settle(comp, recipe).cache_side)  # shared by every run: built before the clock starts
    features_dir = layout.work_dir / "features"
    shutil.rmtree(features_dir, ignore_errors=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="kaggle-kit-frozen-") as runs:
        for name, views in (
            ("recompute every epoch", 0),
            ("cached features, cold", args.views),
            ("cached features, warm (from disk)", args.views),
        ):
            seconds, result = timed(
                lambda name=name, views=views: train(
                    comp,
                    folder,
                    recipe.replace(feature_cache_views=views),
                    out=Path(runs) / f"{name.split()[0]}-{len(rows)}",
                )
            )
            epochs_s = sum(row["seconds"] for row in result.history)
            rows.append(
                {
                    "run": name,
                    "views": views,
                    "epochs": result.epochs_run,
                    "run_s": seconds,
                    "train_loop_s": epochs_s,
                    "final_val_log_loss": result.final_metric,
                }
            )
    for row in rows:
        row["speedup"] = rows[0]["run_s"] / row["run_s"]
    n_train = len(layout.train.ids)
    print(
        f"{args.arch} frozen, {n_train} images ({args.breeds} breeds, 10% validation), {args.epochs} epochs, "
        f"batch {args.batch_size}, device {recipe.device}"
    )
    print(table(rows, ["run", "views", "epochs", "run_s", "train_loop_s", "final_val_log_loss", "speedup"]))
    write_json(
        args.json,
        {
            "benchmark": "frozen",
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": rows,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
