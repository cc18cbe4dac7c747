"""Cross-validation and ensembles on a generated Dog Breed sample with hidden test answers (issue 17, part 6).

    one run (resnet10t)          vs  a 5-fold group at the same epochs (its predict: the folds averaged)
    the group + the run blended  (ensemble, auto weights on the shared held-out predictions)
    two architectures blended    (resnet10t + resnet18, auto weights on their common validation split)

Every submission is scored on the sample's hidden answers (log loss, Dog's metric, and accuracy), beside the
held-out estimate kaggle-kit printed for it (validation, OOF, or the blend's held-out score). Steps whose output
exists are skipped, so a stopped measurement continues; the table and PNG are rebuilt from the folders.

    .venv/bin/python benchmarks/bench_folds.py --work /tmp/folds_bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
KIT = [sys.executable, "-m", "kaggle_kit"]
COMMON = ["--no-pretrained", "--workers", "0", "--seed", "0"]
FOLDS_1 = range(1, 6)  # fold numbers of the 5-fold group


def kit(*args, work: Path) -> None:
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAGGLE_KIT_SUBMISSIONS_DIR": str(work / "subs")}
    subprocess.run([*KIT, *map(str, args)], cwd=work, env=env, check=True)
    print(f"TIME {time.perf_counter() - started:.0f}s: {' '.join(map(str, args))}", flush=True)


def run_all(work: Path, n_train: int, n_test: int, epochs: int, img_size: int) -> None:
    train = ["train", "dog_breed", "--data-dir", "data", *COMMON, "--img-size", img_size, "--epochs", epochs]
    steps = [
        ("data/answers.csv", ["sample", "dog_breed", "data", "--n-train", n_train, "--n-test", n_test]),
        ("single/best.pt", [*train, "--arch", "resnet10t", "--out", "single", "--no-analyze"]),
        ("sub/single.csv", ["predict", "single", "--out", "sub/single.csv"]),
        ("cv5/cv.json", [*train, "--arch", "resnet10t", "--folds", "5", "--out", "cv5"]),
        ("sub/cv5.csv", ["predict", "cv5", "--out", "sub/cv5.csv"]),
        ("sub/cv5+single.csv", ["ensemble", "cv5", "single", "--out", "sub/cv5+single.csv"]),
        *[(f"sub/cv5-fold{i}.csv", ["predict", f"cv5/fold-{i}", "--out", f"sub/cv5-fold{i}.csv"]) for i in FOLDS_1],
        ("single18/best.pt", [*train, "--arch", "resnet18", "--out", "single18", "--no-analyze"]),
        ("sub/single18.csv", ["predict", "single18", "--out", "sub/single18.csv"]),
        ("sub/single+single18.csv", ["ensemble", "single", "single18", "--out", "sub/single+single18.csv"]),
    ]  # fmt: skip
    (work / "sub").mkdir(parents=True, exist_ok=True)
    for output, args in steps:
        if not (work / output).exists():
            kit(*args, work=work)


def hidden_scores(csv: Path, answers: Path) -> tuple[float, float]:
    """(log loss, accuracy) on the hidden answers, with scikit-learn's metrics as the reference."""
    from sklearn.metrics import accuracy_score, log_loss

    submission = pd.read_csv(csv, dtype={"id": str}).set_index("id")
    truth = pd.read_csv(answers, dtype=str).set_index("id")
    truth = truth[truth.index.isin(submission.index)]
    probs = submission.loc[truth.index].to_numpy(dtype=np.float64)
    probs = np.clip(probs / probs.sum(1, keepdims=True), 1e-15, 1 - 1e-15)
    labels = truth.iloc[:, 0].map({c: i for i, c in enumerate(submission.columns)}).to_numpy()
    return float(log_loss(labels, probs, labels=range(probs.shape[1]))), float(accuracy_score(labels, probs.argmax(1)))


def held_out_estimate(work: Path, name: str) -> tuple[str, float]:
    blend = work / "sub" / f"{name}.csv.ensemble.json"
    if blend.is_file():
        record = json.loads(blend.read_text())
        return f"blend on {record['shared_images']} shared held-out", record["blend_score"]
    cv = work / name / "cv.json"
    if cv.is_file():
        return "OOF (every training image)", json.loads(cv.read_text())["oof_metric"]
    config = json.loads((work / name / "config.json").read_text())
    return "validation split", config["calibration"]["best"]["val_metric"]


def report(work: Path, out: Path) -> None:
    names = ["single", "cv5", "cv5+single", "single18", "single+single18"]
    rows = []
    for name in [name for name in names if (work / "sub" / f"{name}.csv").is_file()]:  # a stopped run: what exists
        loss, accuracy = hidden_scores(work / "sub" / f"{name}.csv", work / "data" / "answers.csv")
        kind, estimate = held_out_estimate(work, name)
        weights = ""
        blend = work / "sub" / f"{name}.csv.ensemble.json"
        if blend.is_file():
            weights = " + ".join(f"{m['name']} {m['weight']:.2f}" for m in json.loads(blend.read_text())["members"])
        rows.append(
            {
                "submission": name,
                "hidden log loss": loss,
                "hidden accuracy": accuracy,
                "held-out log loss": estimate,
                "estimate from": kind,
                "estimate - hidden": estimate - loss,
                "weights": weights,
            }
        )
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    fold_csvs = [work / "sub" / f"cv5-fold{i}.csv" for i in FOLDS_1]
    alone = [hidden_scores(csv, work / "data" / "answers.csv") for csv in fold_csvs if csv.is_file()] or [(np.nan,) * 2]
    folds_line = (
        "cv5's folds alone (each fold's own predict), hidden log loss: "
        + ", ".join(f"{loss:.4f}" for loss, _ in alone)
        + f" - mean {np.mean([loss for loss, _ in alone]):.4f}; accuracy mean {np.mean([a for _, a in alone]):.4f}"
    )
    table.to_csv(out / "folds.csv", index=False)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in rows:
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    (out / "folds_table.md").write_text("\n".join(lines) + "\n\n" + folds_line + "\n")
    print("\n".join(lines) + "\n\n" + folds_line)
    _plot(table, out / "folds.png")


def _plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(table))
    axes[0].bar(x - 0.2, table["hidden log loss"], 0.4, label="hidden test")
    axes[0].bar(x + 0.2, table["held-out log loss"], 0.4, label="held-out estimate")
    axes[0].set_title("log loss (lower is better)")
    axes[1].bar(x, table["hidden accuracy"], 0.5, color="tab:green")
    axes[1].set_title("hidden-test accuracy (higher is better)")
    for ax in axes:
        ax.set_xticks(x, table["submission"], rotation=20)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (data, runs, submissions)")
    parser.add_argument("--n-train", type=int, default=1200)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--img-size", type=int, default=48)
    parser.add_argument("--report-only", action="store_true", help="the table and PNG from what --work holds")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "folds")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        run_all(args.work.resolve(), args.n_train, args.n_test, args.epochs, args.img_size)
    report(args.work.resolve(), args.out)


if __name__ == "__main__":
    main()
