"""The fold group folder: K normal run folders trained on K splits of one training set, and what they add up to.

    folds.json             K, seed, group column, competition, data fingerprint, the recipe as asked, and the
                           fold (1..K) of every training id
    fold-1/ ... fold-K/    normal run folders; each one's split.json holds out exactly its fold
    oof_predictions.npz    out-of-fold predictions: ids (training order), labels, logits, calibrated probs, fold
    cv.json / cv.md        OOF metric, per-fold metric, mean and standard deviation

Only the folder's layout lives here (read by `runs` to list groups); training and predicting a group is `folds`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.errors import KitError

FOLDS_FILE = "folds.json"
OOF_FILE = "oof_predictions.npz"
CV_FILE = "cv.json"
CV_TABLE = "cv.md"


def is_group(path: Path | str) -> bool:
    return (Path(path) / FOLDS_FILE).is_file()


@dataclass(frozen=True)
class OutOfFold:
    """Every training image predicted by the fold that held it out, in the training order."""

    ids: list[str]
    labels: np.ndarray
    logits: np.ndarray  # of the configuration each fold's predict uses (TTA or not)
    probs: np.ndarray  # softmax(logits / temperature): the group's calibrated held-out probabilities
    fold: np.ndarray  # 1..K
    temperature: float


class FoldGroup:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def fold_dir(self, fold: int) -> Path:
        return self.path / f"fold-{fold}"

    # ------------------------------------------------------------------ folds.json
    def write_plan(self, plan: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / FOLDS_FILE, json.dumps(plan, indent=1))

    def plan(self) -> dict[str, Any]:
        path = self.path / FOLDS_FILE
        try:
            plan = json.loads(path.read_text())
        except FileNotFoundError:
            raise KitError(
                f"{self.path} is not a fold group (no {FOLDS_FILE}); make one with `train --folds K`"
            ) from None
        except (OSError, ValueError) as error:
            raise KitError(f"{path}: unreadable ({error}); train the group again into a new --out") from None
        return plan

    @property
    def k(self) -> int:
        return int(self.plan()["folds"])

    def val_ids(self, fold: int) -> list[str]:
        plan = self.plan()
        return [image_id for image_id, f in zip(plan["ids"], plan["fold"]) if f == fold]

    # ------------------------------------------------------------------ out-of-fold predictions
    def write_oof(self, oof: OutOfFold) -> None:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=np.array(oof.ids, dtype=str),
            labels=np.asarray(oof.labels, np.int64),
            logits=np.asarray(oof.logits, np.float32),
            probs=np.asarray(oof.probs, np.float32),
            fold=np.asarray(oof.fold, np.int64),
            temperature=np.float64(oof.temperature),
        )
        atomic_write_bytes(self.path / OOF_FILE, buffer.getvalue())

    def oof(self) -> OutOfFold:
        path = self.path / OOF_FILE
        if not path.is_file():
            raise KitError(
                f"{self.path}: no {OOF_FILE} yet: finish every fold first (`kaggle-kit train --resume {self.path}`)"
            )
        with np.load(path, allow_pickle=False) as data:
            return OutOfFold(
                data["ids"].tolist(),
                data["labels"],
                data["logits"],
                data["probs"],
                data["fold"],
                float(data["temperature"]),
            )

    # ------------------------------------------------------------------ CV summary
    def write_cv(self, summary: dict[str, Any], table: str) -> None:
        atomic_write_text(self.path / CV_FILE, json.dumps(summary, indent=1))
        atomic_write_text(self.path / CV_TABLE, table)

    def cv(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / CV_FILE).read_text())
        except (OSError, ValueError):
            return None
