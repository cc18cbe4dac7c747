"""A seeded, stratified validation split, saved with the run so it can be reproduced exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.errors import KitError


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted: `fraction` of every class goes to validation (at least one image
    of each class with two or more), chosen by a generator seeded with `seed`. With `groups`, whole groups go
    to validation (about `fraction` of the images, classes balanced as well as whole groups allow), so no
    validation image shares its group with a training one."""
    labels = np.asarray(labels)
    if fraction <= 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    if groups is not None:
        return _grouped_split(labels, np.asarray(groups), fraction, seed)
    rng = np.random.default_rng(seed)
    val = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        take = int(round(fraction * len(members)))
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        else:
            take = 0
        val.append(rng.permutation(members)[:take])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def _grouped_split(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first fold of scikit-learn's StratifiedGroupKFold with about 1/fraction folds: whole groups held out,
    chosen so each class keeps its share as nearly as whole groups allow."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise KitError(
            f"the training data has {n_groups} group: a grouped validation split needs at least 2 (pass --no-groups "
            "to init, or train with --full-train)"
        )
    k = min(max(2, int(round(1 / fraction))), n_groups)
    train_idx, val_idx = _group_splits(labels, groups, k, seed)[0]
    return np.sort(train_idx), np.sort(val_idx)


def save_split(path: Path, ids: list[str], val_idx: np.ndarray, fraction: float, seed: int) -> None:
    data = {"fraction": fraction, "seed": seed, "val_ids": [ids[i] for i in val_idx]}
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def load_split(path: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The (train_idx, val_idx) a saved split names, against the current id list."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise KitError(f"{path}: unreadable split file ({error}); delete it to draw a new split") from None
    position = {image_id: n for n, image_id in enumerate(ids)}
    missing = [i for i in data["val_ids"] if i not in position]
    if missing:
        raise KitError(
            f"{path}: validation id {missing[0]} is not in the training data; the data changed - start a new run"
        )
    val_idx = np.sort(np.array([position[i] for i in data["val_ids"]], dtype=np.int64))
    return np.setdiff1d(np.arange(len(ids)), val_idx), val_idx


def stratified_folds(labels: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """The fold (0..k-1) of every image: each class dealt round the folds in a seeded random order, so every fold
    holds about 1/k of each class. With `groups`, whole groups are dealt instead (scikit-learn's
    StratifiedGroupKFold), so no group is split between training and held-out images."""
    labels = np.asarray(labels)
    if groups is not None:
        return _grouped_folds(labels, np.asarray(groups), k, seed)
    # a stream of its own: seeded as `stratified_split` is, a run's validation images would all land in fold 1
    # (the same per-class permutations), and a blend of that run and the group would be weighed on one fold only
    rng = np.random.default_rng([seed, k])
    folds = np.empty(len(labels), dtype=np.int64)
    start = 0
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        # each class starts where the previous one stopped, so small classes do not all fill fold 0 first
        folds[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return folds


def _grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    folds = np.empty(len(labels), dtype=np.int64)
    for fold, (_, held) in enumerate(_group_splits(labels, groups, k, seed)):
        folds[held] = fold
    return folds


def _group_splits(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's StratifiedGroupKFold, quiet about classes with fewer images than folds (whole groups decide
    where those go; `check_fold_count` has refused the requests that cannot work)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(splitter.split(np.zeros(len(labels)), labels, groups))


def check_fold_count(labels: np.ndarray, k: int, classes: list[str], groups: np.ndarray | None = None) -> None:
    """`--folds k` is refused where a fold could not hold out every class (or, grouped, would hold no group)."""
    if k < 2:
        raise KitError(f"--folds {k}: cross-validation needs at least 2 folds")
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < k:
            raise KitError(f"--folds {k}: the training data has only {n_groups} groups; {_fewer_folds(n_groups)}")
        return
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    smallest = int(np.argmin(counts))
    if counts[smallest] < k:
        raise KitError(
            f"--folds {k}: class {classes[values[smallest]]!r} has only {counts[smallest]} training images, "
            f"so some folds would hold out none of it; {_fewer_folds(int(counts[smallest]))}"
        )


def _fewer_folds(most: int) -> str:
    if most >= 2:
        return f"use --folds {most} or fewer"
    # --folds 1 is refused above: name a fix that works
    return "cross-validation needs at least 2 of each: train a single run (drop --folds) or on more data"
