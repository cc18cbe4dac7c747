"""Training truths and splits of targets other than one label per image (competitions/targets.py's kinds).

The target kind reads its truth from the labels CSV; this module finds the classes the kind names (the sample's
label columns, the labels a set column uses, the declared grades, or the one value column) and splits the images
so each part holds the target's spread: multi-label stratification (iterative-stratification's, as Kaggle
winners use for label sets) or a stratified split of the kind's strata (grades, quantile bins of a value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions.registry import Competition
from ..competitions.targets import MultiLabel, Ordinal, TargetKind, TopK, target_of
from ..core.errors import KitError
from .labels import check_id, read_csv
from .split import stratified_folds, stratified_split

VALUE_BINS = 5  # quantile bins a regression target is stratified by


def target_classes(target: TargetKind, comp: Competition, sample: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    """The model's output names: what the submission's columns or label sets are made of."""
    if isinstance(target, MultiLabel):
        if target.form == "columns":
            return [str(c) for c in sample.columns[1:]]
        return list(comp.declared_classes) or target.label_names(frame, comp.label_column)
    if isinstance(target, Ordinal):
        return [str(k) for k in range(target.n_grades)]
    if isinstance(target, TopK):
        return list(comp.declared_classes) or target.label_names(frame, comp.label_column)
    return [comp.label_column]


def read_target_labels(path: Path, comp: Competition, sample: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """(ids sorted as the labels' id kind sorts them, classes, truth rows in that order)."""
    target = target_of(comp)
    frame = read_csv(path, "labels")
    needed = [comp.id_column] + ([comp.label_column] if comp.label_column else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise KitError(
            f"{path}: column {missing[0]!r} is missing (header is {','.join(frame.columns)}); download it again"
        )
    repeated = frame[comp.id_column].duplicated()
    if repeated.any():
        raise KitError(f"{path}: id '{frame[comp.id_column][repeated].iloc[0]}' appears more than once; keep one row")
    for image_id in frame[comp.id_column]:
        check_id(image_id, comp, str(path))
    key = frame[comp.id_column].astype(int) if comp.id_kind == "int" else frame[comp.id_column]
    frame = frame.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
    classes = target_classes(target, comp, sample, frame)
    truth = target.read_labels(frame, comp.id_column, comp.label_column, classes, path)
    return frame[comp.id_column].tolist(), classes, truth


def strata(truth: np.ndarray) -> np.ndarray:
    """One integer per image a single-label stratification can deal: the grade, or the quantile bin of a value."""
    truth = np.asarray(truth)
    if truth.dtype.kind in "iub":
        return truth
    edges = np.quantile(truth, np.linspace(0, 1, VALUE_BINS + 1)[1:-1])
    return np.searchsorted(edges, truth, side="right")


def target_split(truth: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted: label sets by multi-label stratification, values and grades by their strata."""
    truth = np.asarray(truth)
    if truth.ndim == 1 or fraction <= 0:
        return stratified_split(strata(truth) if truth.ndim == 1 else np.zeros(len(truth), int), fraction, seed)
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed % (2**32))
    train_idx, val_idx = next(splitter.split(np.zeros(len(truth)), truth))
    return np.sort(train_idx), np.sort(val_idx)


def target_folds(truth: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of every image, stratified as `target_split` is."""
    truth = np.asarray(truth)
    if truth.ndim == 1:
        return stratified_folds(strata(truth), k, seed)
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    folds = np.zeros(len(truth), dtype=np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed % (2**32))
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(truth)), truth)):
        folds[held] = fold
    return folds
