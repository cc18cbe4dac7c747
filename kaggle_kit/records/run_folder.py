"""The run folder: everything a run needs to be read, resumed, re-run and predicted from.

    config.json          every resolved setting, versions, git commit, data fingerprint, seed
    split.json           the validation ids
    history.csv          one row per epoch, counted from 1 (as every message; last.pt counts from 0)
    curves.png           loss, accuracy and the competition metric per epoch
    best.pt / last.pt    checkpoints; last.pt also holds optimizer, scheduler, scaler, EMA and RNG state
    val_predictions.npz  validation ids, labels and logits (calibration, scoring, ensembling)

Every write is atomic (temporary file, fsync, rename). A checkpoint that fails to load (torn by a
crash or a full disk) is reported, and the previous one (`last.prev.pt`) is used instead.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.bootstrap import Interval
from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.errors import KitError
from .run_config import RunConfig, read_config_dict, update_config, write_config

HISTORY = "history.csv"
RUNS_DIR_ENV = "KAGGLE_KIT_RUNS_DIR"
DEFAULT_RUNS_DIR = Path("runs")  # `train` writes runs/<competition>/<run> unless told otherwise


def runs_root() -> Path:
    """Where run folders live unless a path is given: $KAGGLE_KIT_RUNS_DIR, else runs/. Here, below `runs`
    (the listing, which reads the ledger), so that `tracking` can find runs/mlflow.db without a cycle."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


HISTORY_COLUMNS = [
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_metric",
    "seconds",
    "images_per_s",
    # val_metric's 95% bootstrap interval and the images (and groups) it was measured on
    "val_low",
    "val_high",
    "val_n",
    "val_groups",
]
COUNTED_COLUMNS = ("epoch", "val_n", "val_groups")  # whole numbers; every other column is a measured float


def display_epoch(index: int) -> int:
    """An epoch as a person counts it: 1-based, as the progress bar's "epoch 2/3". The trainer's loop, checkpoints
    and last.pt's history count from 0; every message and history.csv count from 1."""
    return int(index) + 1


def stopped_early(values: list[float], patience: int | None, metric) -> bool:
    """Early stopping ended the run: `patience` epochs of validation `values` since the best, as the EarlyStopping
    hook counts (a run so ended is finished, though it ran fewer epochs than its recipe planned)."""
    best = metric.best(values)
    if patience is None or not values or best is None:
        return False
    return len(values) - 1 - values.index(best) >= patience


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    import platform

    found = {"python": platform.python_version()}
    for name in ("torch", "timm", "albumentations", "numpy", "cv2", "kaggle_kit"):
        try:
            module = __import__(name)
            found[name] = getattr(module, "__version__", "?")
        except ImportError:
            pass
    return found


def new_run_path(root: Path, competition: str, arch: str, recipe: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / competition / f"{stamp}-{arch.replace('/', '_')}-{recipe}"
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / competition / f"{stamp}-{arch.replace('/', '_')}-{recipe}-{n}"
    return path


class RunDir:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def name(self) -> str:
        """The folder's name; for a run of an experiment (`<experiment>/<cell>/seed=<k>`, beside the experiment's
        experiment.json) `<experiment>.<cell>.seed=<k>`: every cell has its own seed=0, and the name keys the
        default submission file and the ledger's run field."""
        experiment = self.path.absolute().parent.parent
        if (experiment / "experiment.json").is_file():
            return f"{experiment.name}.{self.path.absolute().parent.name}.{self.path.name}"
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ config
    def create(self, config: dict[str, Any]) -> None:
        self.ensure()
        self.write_config(config)

    def ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise KitError(
                f"cannot create run folder {self.path} ({error.strerror}); choose a writable --out"
            ) from None
        if not os.access(self.path, os.W_OK):
            raise KitError(f"run folder {self.path} is not writable; choose a writable --out")

    def write_config(self, config: dict[str, Any]) -> None:
        write_config(self.path, config)

    def read_config(self) -> RunConfig:
        """config.json as a typed RunConfig: what every reader of a run's settings uses."""
        return RunConfig.from_dict(read_config_dict(self.path))

    def config(self) -> dict[str, Any]:
        """config.json as stored, every key included (tools and tests; the library reads `read_config`)."""
        return read_config_dict(self.path)

    def update_config(self, **changes: Any) -> dict[str, Any]:
        return update_config(self.path, **changes)

    # ------------------------------------------------------------------ history
    def write_history(self, rows: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:  # the rows count epochs from 0, as last.pt does; the file a person reads from 1
            writer.writerow({k: _fmt(display_epoch(row[k]) if k == "epoch" else row.get(k)) for k in HISTORY_COLUMNS})
        atomic_write_text(self.file(HISTORY), buffer.getvalue())

    def history(self):
        import pandas as pd

        path = self.file(HISTORY)
        if not path.is_file():
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        history = pd.read_csv(path)
        # whole-number figures are written as "1" (6 significant digits, no trailing zeros): read every measured
        # column back as floats, so a history reads the same whatever values it happened to hold
        measured = [c for c in history.columns if c not in COUNTED_COLUMNS and history[c].dtype.kind in "iu"]
        history[measured] = history[measured].astype(float)
        if len(history) and history["epoch"].iloc[0] == 0:  # written before history.csv counted from 1
            history["epoch"] = history["epoch"] + 1
        return history

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, name: str, state: dict[str, Any], keep_previous: bool = False) -> Path:
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.file(f"{name}.pt")
        if keep_previous and path.is_file():
            # the previous checkpoint keeps its own name until the new one replaces it (a full disk or a crash in
            # between leaves it there and in .prev.pt): a second name for the same file, not a move
            staged = self.file(f".{name}.prev.pt.link")
            staged.unlink(missing_ok=True)
            try:
                os.link(path, staged)
            except OSError:  # a file system without hard links
                shutil.copy2(path, staged)
            os.replace(staged, self.file(f"{name}.prev.pt"))
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def has_checkpoint(self, name: str) -> bool:
        return self.file(f"{name}.pt").is_file() or self.file(f"{name}.prev.pt").is_file()

    def load_checkpoint(self, name: str, map_location="cpu") -> dict[str, Any]:
        """The named checkpoint, or its previous copy when the newest is torn; weights only."""
        import torch

        candidates = [self.file(f"{name}.pt"), self.file(f"{name}.prev.pt")]
        problems = []
        for path in candidates:
            if not path.is_file():
                continue
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
                if problems:
                    print(f"warning: {problems[0]}; using {path.name} instead", file=sys.stderr)
                return state
            except Exception as error:  # torn zip, truncated pickle: try the previous copy
                problems.append(f"{path} is damaged ({type(error).__name__})")
        if problems:
            raise KitError(f"{problems[0]} and no earlier checkpoint loads; train again")
        if name == "swa":  # a finished run without --swa-epochs has none: training "first" would not make one
            raise KitError(
                f"{self.path}: no swa.pt (written only by a run trained with --swa-epochs N): "
                f"pass --checkpoint best or last"
            )
        raise KitError(f"{self.path}: no {name}.pt checkpoint; train this run first (or pass --checkpoint last)")

    # ------------------------------------------------------------------ predictions
    def save_val_predictions(self, ids: list[str], labels: np.ndarray, logits: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=np.array(ids, dtype=str),
            # class indices and label sets (0/1 rows) as integers; a regression target's values as they are
            labels=np.asarray(labels, np.float64 if np.asarray(labels).dtype.kind == "f" else np.int64),
            logits=np.asarray(logits, np.float32),
        )
        atomic_write_bytes(self.file("val_predictions.npz"), buffer.getvalue())

    def val_predictions(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        path = self.file("val_predictions.npz")
        if not path.is_file():
            raise KitError(
                f"{self.path}: no val_predictions.npz; the run has not finished an epoch with a validation split"
            )
        data = np.load(path, allow_pickle=False)
        return data["ids"].tolist(), data["labels"], data["logits"]

    # ------------------------------------------------------------------ plots
    def plot_curves(self, metric_label: str) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        history = self.history()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        epochs = history["epoch"]
        axes[0].plot(epochs, history["train_loss"], label="train")
        axes[0].plot(epochs, history["val_loss"], label="validation")
        axes[0].set_title("loss")
        axes[1].plot(epochs, history["train_accuracy"], label="train")
        axes[1].plot(epochs, history["val_accuracy"], label="validation")
        axes[1].set_title("accuracy")
        axes[2].plot(epochs, history["val_metric"], color="tab:green", label="validation")
        axes[2].set_title(f"validation {metric_label}")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(self.name)
        # fixed margins, not tight_layout: redrawn after every epoch, and tight_layout draws the figure twice
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.82, wspace=0.22)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        atomic_write_bytes(self.file("curves.png"), buffer.getvalue())
        return self.file("curves.png")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def row_interval(row: dict[str, Any]) -> Interval | None:
    """A history row's validation figure with its interval (None: a row written before intervals were)."""
    if row.get("val_n") is None or row.get("val_n") != row.get("val_n"):  # absent, or NaN read back from a CSV
        return None
    groups = row.get("val_groups")
    groups = None if groups is None or groups != groups or groups == "" else int(groups)
    return Interval(float(row["val_metric"]), float(row["val_low"]), float(row["val_high"]), int(row["val_n"]), groups)


def best_interval(history: list[dict[str, Any]], best_epoch: int | None) -> Interval | None:
    """The best epoch's figure with its interval: one row per epoch in order (history.csv's read back count from 1,
    the loop's from 0), so the best is at its index."""
    if best_epoch is None or not 0 <= int(best_epoch) < len(history):
        return None
    return row_interval(history[int(best_epoch)])


def best_row_interval(history, metric) -> Interval | None:
    """history.csv's best epoch (by `metric`) with its interval; None without validation or intervals."""
    if "val_metric" not in history or not len(history) or "val_n" not in history:
        return None
    scores = history["val_metric"].tolist()
    best = metric.best(scores)
    return row_interval(history.iloc[scores.index(best)].to_dict()) if best == best else None
