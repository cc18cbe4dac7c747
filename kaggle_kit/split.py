"""A seeded, stratified validation split, saved with the run so it can be reproduced exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .errors import KitError


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted: `fraction` of every class goes to validation (at least one image
    of each class with two or more), chosen by a generator seeded with `seed`."""
    labels = np.asarray(labels)
    if fraction <= 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
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
