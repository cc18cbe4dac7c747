"""Does the printed validation figure hold the hidden-test score? APTOS-shaped downloads (issue 27).

    .venv/bin/python benchmarks/bench_crossfit.py [--seeds 0 1 2 3 4] [--epochs 1] [--json FILE]

For each seed, `kaggle-kit sample` writes an APTOS-shaped download (ordinal grades 0-4 scored by QWK, `train.csv`
+ `train_images/`, 215 training images of which 45 validate with --val-fraction 0.2, 225 test images with hidden
answers.csv); then the commands a user types: `train` (a tiny from-scratch CNN at 32 px, one epoch, so the model
is mediocre and the grade thresholds have something to do), `predict` (which prints the cross-fitted validation
QWK with its 95% bootstrap interval), and `score FILE --answers answers.csv` (the hidden score). Beside it, the
figure the kit printed before cross-fitting: thresholds fitted on the 45 validation images and scored on them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import print_machine, table, write_json  # noqa: E402

GRADES = """
name = "grades"
slug = "grades-mini"
title = "APTOS grades (generated)"
aliases = []
metric = "qwk"
default_recipe = "tiny"
[labels]
source = "csv"
id_column = "id_code"
label_column = "diagnosis"
id_kind = "hex"
class_source = "labels"
classes = ["0", "1", "2", "3", "4"]
[submission]
kind = "label"
[files]
image_ext = ".bmp"
label_file = "train.csv"
train_dir = "train_images"
test_dir = "test_images"
sample_file = "sample_submission.csv"
[augmentations.none]
[recipes.tiny]
arch = "test_resnet"
img_size = 32
"""
FIGURE = re.compile(
    r"validation \(cross-fitted\) quadratic weighted kappa (-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\] n=(\d+)"
)


def kit(*args, env) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "kaggle_kit", *map(str, args)], env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"kaggle-kit {' '.join(map(str, args))} failed: {result.stderr[-800:]}")
    return result.stdout


def in_sample_figure(run: Path) -> float:
    """What the kit printed before issue 27: QWK thresholds fitted on the validation split and scored on it."""
    import numpy as np

    from kaggle_kit.competitions.metrics import QWK, fit_qwk_thresholds, one_hot_grades, softmax
    from kaggle_kit.records.run_folder import RunDir

    _, labels, logits = RunDir(run).val_predictions()
    probs = softmax(np.asarray(logits, np.float64), RunDir(run).read_config().temperature or 1.0)
    return max(QWK(labels, probs), QWK(labels, one_hot_grades(probs, fit_qwk_thresholds(labels, probs))))


def one_seed(root: Path, seed: int, epochs: int, env: dict) -> dict:
    data, run, submission = root / f"data-{seed}", root / f"run-{seed}", root / f"sub-{seed}.csv"
    kit("sample", "grades", data, "--n-train", 215, "--n-test", 225, "--seed", seed, env=env)
    flags = ["--arch", "test_resnet", "--img-size", 32, "--epochs", epochs, "--val-fraction", 0.2]
    flags += ["--device", "cpu", "--workers", 0]
    kit("train", "grades", "--data-dir", data, "--out", run, *flags, "--seed", seed, "--no-analyze", env=env)
    printed = FIGURE.search(kit("predict", run, "--data-dir", data, "--out", submission, env=env))
    if printed is None:
        raise SystemExit("predict printed no cross-fitted validation figure")
    scored = kit("score", submission, "--answers", data / "answers.csv", "--competition", "grades", env=env)
    hidden = float(re.search(r"quadratic weighted kappa (-?[\d.]+)", scored).group(1))
    value, low, high, n = float(printed[1]), float(printed[2]), float(printed[3]), int(printed[4])
    return {
        "seed": seed,
        "cross-fitted": f"{value:.3f} [{low:.3f}, {high:.3f}] n={n}",
        "hidden": f"{hidden:.3f}",
        "holds": "yes" if low <= hidden <= high else "NO",
        "old in-sample": f"{in_sample_figure(run):.3f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    machine = print_machine("cross-fitted QWK against the hidden answers (APTOS-shaped)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "home" / "kaggle-kit" / "competitions").mkdir(parents=True)
        (root / "home" / "kaggle-kit" / "competitions" / "grades.toml").write_text(GRADES)
        env = {**os.environ, "XDG_CONFIG_HOME": str(root / "home"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        rows = [one_seed(root, seed, args.epochs, env) for seed in args.seeds]
    print(table(rows, ["seed", "cross-fitted", "hidden", "holds", "old in-sample"]))
    write_json(args.json, {"machine": machine, "epochs": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
