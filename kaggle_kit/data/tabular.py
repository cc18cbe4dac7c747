"""Tabular columns beside the images (PetFinder's 12 photo flags, SIIM-ISIC's sex, age and body site): read,
encoded for the model's tabular branch, and joined to the labels so every batch path carries them.

A declaration names its columns (`features = [...]`, `init --features`). Training reads them from the labels CSV,
predict from `test_table` (test.csv). The encoding is fitted on the training split's images alone (never on
validation or test), written to the run folder as tabular.json and applied unchanged at predict time:
- a column whose every training value is a number is standardised by the training mean and spread;
- any other column is categorical, one 0/1 column per value seen in training (a value first seen at predict time
  gets all zeros);
- a column with a missing training value (empty, NA, nan) gets a 0/1 "missing" indicator beside it; a missing
  numeric value is encoded as the training mean (0 after standardising), a missing category as all zeros.
Hand-written rather than scikit-learn's ColumnTransformer: the encoding must be a readable JSON record in the run
folder, reloaded without pickle (scikit-learn's transformers only serialise by pickle).

The batches carry the encoded rows beside the truth (`FeatureJoin`): one float matrix [truth | features] goes
wherever the labels go (DataLoader workers, the device-resident path), and the step splits it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.run_folder import RunDir
from .labels import read_csv
from .layout import Layout, small_file

ENCODING_FILE = "tabular.json"
MISSING = {"", "na", "n/a", "nan", "null", "none"}


def _missing(values: pd.Series) -> np.ndarray:
    return values.astype(str).str.strip().str.lower().isin(MISSING).to_numpy()


@dataclass(frozen=True)
class Column:
    """One declared column's encoding: numeric (mean, std) or categorical (the training values), and whether a
    missing-value indicator follows it."""

    name: str
    kind: str  # "numeric" | "categorical"
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] = ()
    indicator: bool = False

    @property
    def width(self) -> int:
        return (1 if self.kind == "numeric" else len(self.categories)) + int(self.indicator)

    def output_names(self) -> list[str]:
        names = [self.name] if self.kind == "numeric" else [f"{self.name}={c}" for c in self.categories]
        return names + ([f"{self.name} missing"] if self.indicator else [])

    def encode(self, values: pd.Series) -> np.ndarray:
        missing = _missing(values)
        text = values.astype(str).str.strip()
        if self.kind == "numeric":
            numbers = pd.to_numeric(text.where(~missing, None), errors="coerce").to_numpy(dtype=np.float64)
            encoded = np.where(missing, 0.0, (numbers - self.mean) / self.std)[:, None]
        else:
            encoded = (text.to_numpy()[:, None] == np.array(self.categories, dtype=object)[None, :]).astype(float)
        if self.indicator:
            encoded = np.concatenate([encoded, missing[:, None].astype(float)], axis=1)
        return encoded


def fit_column(name: str, values: pd.Series) -> Column:
    """The encoding of `values` (the training split's cells of one column, as read: strings)."""
    missing = _missing(values)
    present = values.astype(str).str.strip()[~missing]
    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and numbers.notna().all():
        std = float(numbers.std(ddof=0))
        return Column(name, "numeric", float(numbers.mean()), std if std > 1e-12 else 1.0, (), bool(missing.any()))
    return Column(name, "categorical", categories=tuple(sorted(set(present))), indicator=bool(missing.any()))


@dataclass(frozen=True)
class TabularEncoding:
    """Every declared column's encoding, in the declared order: what the tabular branch reads."""

    columns: tuple[Column, ...]

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, width) float32 of `frame`'s declared columns."""
        if not self.columns:
            return np.zeros((len(frame), 0), np.float32)
        return np.concatenate([c.encode(frame[c.name]) for c in self.columns], axis=1).astype(np.float32)

    def record(self) -> dict[str, Any]:
        return {"columns": [c.__dict__ | {"categories": list(c.categories)} for c in self.columns]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TabularEncoding:
        return cls(tuple(Column(**{**c, "categories": tuple(c["categories"])}) for c in record["columns"]))

    def describe(self) -> str:
        parts = []
        for c in self.columns:
            what = "standardised" if c.kind == "numeric" else f"{len(c.categories)} categories"
            parts.append(f"{c.name} ({what}{', missing indicator' if c.indicator else ''})")
        return f"{self.width} inputs from " + ", ".join(parts)


def fit_encoding(frame: pd.DataFrame, features: tuple[str, ...]) -> TabularEncoding:
    """The encoding of `features`, fitted on `frame` (the training split's rows only)."""
    return TabularEncoding(tuple(fit_column(name, frame[name]) for name in features))


# ------------------------------------------------------------------------------------------------ reading


def check_columns(frame: pd.DataFrame, features, path: Path, fix: str) -> None:
    """A one-line KitError naming the first declared column `frame` lacks."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise KitError(
            f"feature column {missing[0]!r} is not in {path} (header {','.join(map(str, frame.columns))}): {fix}"
        )


def read_rows(layout: Layout, split: str, ids: list[str]) -> pd.DataFrame:
    """The declared columns' cells for `ids` (training ids from the labels CSV, test ids from test.csv), in order."""
    comp = layout.competition
    answer = [c for c in comp.features if c in (comp.id_column, comp.label_column)]
    if answer:  # a hand-written declaration could feed the model its own answer
        raise KitError(
            f"{comp.source}: feature {answer[0]!r} is the id or label column of {comp.label_file}: "
            "drop it from features"
        )
    name = comp.label_file if split == "train" else comp.test_table
    path = small_file(layout.root, comp, name, layout.work_dir)
    frame = read_csv(path, "feature")
    fix = (
        "drop it from the declaration's features (`init --features`)"
        if split == "train"
        else f"every feature must be in both the labels CSV and {name}: drop it from features (`init --features`)"
    )
    check_columns(frame, comp.features, path, fix)
    if comp.id_column not in frame.columns:
        raise KitError(f"{path}: no id column {comp.id_column!r} (header {','.join(frame.columns)}); download it again")
    keyed = frame.drop_duplicates(comp.id_column).set_index(comp.id_column)
    absent = [i for i in ids if str(i) not in keyed.index]
    if absent:
        raise KitError(
            f"{path}: no row for image {absent[0]} ({len(absent)} images without one): every image needs its "
            f"feature row; download the data again"
        )
    return keyed.loc[[str(i) for i in ids], list(comp.features)].reset_index(drop=True)


def load_encoding(run: RunDir) -> TabularEncoding | None:
    """The run's tabular encoding (None: the run trained without tabular columns)."""
    path = run.file(ENCODING_FILE)
    if not path.is_file():
        return None
    try:
        return TabularEncoding.from_record(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as error:
        raise KitError(f"{path}: not a tabular encoding ({error}); the run folder is damaged - train again") from None


def save_encoding(run: RunDir, encoding: TabularEncoding) -> None:
    atomic_write_text(run.file(ENCODING_FILE), json.dumps(encoding.record(), indent=1))


def encoded_rows(run: RunDir, layout: Layout, split: str, ids: list[str]) -> np.ndarray | None:
    """The run's encoded feature rows for `ids` (None: the run has no tabular columns), at predict time."""
    encoding = load_encoding(run)
    if encoding is None:
        return None
    return encoding.encode(read_rows(layout, split, ids))


def train_features(layout: Layout, run: RunDir | None, resume: bool, ids, train_idx, write: bool):
    """(encoded rows of every training id, the encoding): fitted on `train_idx` alone and saved to the run, or the
    run's own encoding on resume. (None, None) without declared features."""
    if not layout.competition.features:
        return None, None
    frame = read_rows(layout, "train", list(ids))
    read_rows(layout, "test", list(layout.test.ids))  # a feature predict cannot read is refused now, not after training
    encoding = load_encoding(run) if (resume and run is not None) else None
    if encoding is None:
        encoding = fit_encoding(frame.iloc[np.asarray(train_idx, dtype=np.int64)], layout.competition.features)
        if run is not None and write:
            save_encoding(run, encoding)
    return encoding.encode(frame), encoding


# --------------------------------------------------------------------------------------- through batches


@dataclass(frozen=True)
class FeatureJoin:
    """How [truth | features] rows split again: the truth's columns (0: one value per image) and its type."""

    width: int
    truth_columns: int
    integer: bool

    @classmethod
    def of(cls, labels: np.ndarray, features: np.ndarray) -> FeatureJoin:
        labels = np.asarray(labels)
        return cls(features.shape[1], 0 if labels.ndim == 1 else labels.shape[1], labels.dtype.kind in "iub")

    def join(self, labels: np.ndarray, features: np.ndarray) -> np.ndarray:
        truth = np.asarray(labels, dtype=np.float32).reshape(len(labels), -1)
        return np.concatenate([truth, features.astype(np.float32)], axis=1)

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(truth as the labels were, features) of a batch's joined rows."""
        truth, features = rows[:, : rows.shape[1] - self.width], rows[:, rows.shape[1] - self.width :]
        if self.truth_columns == 0:
            truth = truth[:, 0]
        return (truth.round().long() if self.integer else truth), features.float()


def check_tabular_recipe(recipe, pseudo_labelled: bool, competition: str) -> None:
    """Levers that change images or their rows without their tabular columns, refused by name."""
    levers = {
        "--mixup": recipe.mixup_alpha > 0,
        "--cutmix": recipe.cutmix_alpha > 0,
        "--swa-epochs": recipe.swa_epochs is not None,
        "--feature-cache-views": recipe.feature_cache_views > 0,
        "--pseudo-labels": pseudo_labelled,
    }
    used = [flag for flag, on in levers.items() if on]
    if used:
        raise KitError(
            f"{used[0]} is not built for images with tabular columns yet ({competition} declares features): drop it"
        )
