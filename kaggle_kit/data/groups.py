"""The group of every training image (a driver, a patient), where the declaration names a group column.

Images of one group look alike (one driver's car, one patient's scans), and a hidden test set of new groups scores
a model on groups it never saw: validating on a group it trained on would print a figure the test never reaches.
The column is read from the labels CSV (`group_column` beside the labels, SIIM-ISIC's `patient_id`) or, where the
labels are folders or file names, from a CSV of its own (`group_file`, State Farm's `driver_imgs_list.csv`:
`subject,classname,img`) whose image column names each training image by its file name.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from ..core.errors import KitError
from .labels import read_csv
from .layout import Layout, small_file


def image_groups(layout: Layout) -> np.ndarray | None:
    """The group of every training image, in the layout's order (None: the declaration names no group column)."""
    comp = layout.competition
    if not comp.group_column:
        return None
    if comp.group_file:
        path = small_file(layout.root, comp, comp.group_file, layout.work_dir)
    elif comp.labels_in_csv:
        path = layout.labels_path
    else:
        raise KitError(
            f"{comp.name} declares group_column {comp.group_column!r} but its labels are {comp.label_source}, so no "
            "labels CSV holds it: name the CSV mapping each image to its group (group_file, or `init --groups CSV`)"
        )
    table = read_csv(path, "groups")
    if comp.group_column not in table.columns:
        raise KitError(
            f"{path}: no column {comp.group_column!r}, which {comp.name} declares as its group column (header is "
            f"{','.join(table.columns)}); pass `init --group-column COL` with one of them, or --no-groups"
        )
    by_name = _group_by_image(table, comp.group_column, layout.train.ids, path)
    missing = [i for i in layout.train.ids if _keys(i)[0] not in by_name and _keys(i)[1] not in by_name]
    if missing:
        raise KitError(
            f"{path}: training image {missing[0]} has no row ({len(missing)} without one); every training image "
            f"needs its {comp.group_column!r}: download the file again, or pass `init --no-groups`"
        )
    groups = np.array([by_name.get(_keys(i)[0], by_name.get(_keys(i)[1])) for i in layout.train.ids], dtype=str)
    _check_declared(comp, groups, layout.classes)
    return groups


FLAG_VALUES = {"0", "1", "0.0", "1.0", "True", "False", "true", "false", "yes", "no", ""}
_WARNED: set[tuple[str, str]] = set()  # (declaration, column): a useless group column is said once a process


def why_not_groups(column: str, values, label_column: str | None, classes=()) -> tuple[str, bool] | None:
    """Why `column` (its `values`, one per image) cannot group images, and whether that is fatal (a split or an
    interval built on it would mislead) or merely useless (every image a group of its own); None where it can."""
    values = pd.Series(values).astype(str)
    if column == label_column or (len(classes) and set(values) <= {str(c) for c in classes}):
        return "is the label: grouping by it holds whole classes out of training, which the model then never sees", True
    if set(values) <= FLAG_VALUES:
        return f"holds a 0/1 flag ({', '.join(sorted(set(values)))}), not an id that several images share", True
    if values.nunique() == len(values):
        return (
            f"names one image per value ({len(values)} values for {len(values)} images): grouping changes nothing",
            False,
        )
    return None


def _check_declared(comp, groups: np.ndarray, classes) -> None:
    """A declared group_column that cannot be a group: an error naming the declaration, or a warning once."""
    found = why_not_groups(comp.group_column, groups, comp.label_column, classes)
    if found is None:
        return
    reason, fatal = found
    if fatal:
        raise KitError(
            f"{comp.source}: group_column {comp.group_column!r} {reason}; set it to the column naming each image's "
            "driver or patient, or remove it (`kaggle-kit init --no-groups`)"
        )
    if (comp.source, comp.group_column) not in _WARNED:
        _WARNED.add((comp.source, comp.group_column))
        print(f"warning: {comp.source}: group_column {comp.group_column!r} {reason}; remove it", file=sys.stderr)


def _keys(image_id: str) -> tuple[str, str]:
    """An id's file name (`c0/img_1.jpg` -> `img_1.jpg`) and its stem: a group CSV names images either way."""
    name = image_id.rsplit("/", 1)[-1]
    return name, name.rsplit(".", 1)[0] if "." in name else name


def _group_by_image(table: pd.DataFrame, group_column: str, ids: list[str], path) -> dict[str, str]:
    """image name -> group, from the column whose values name the training images."""
    wanted = {key for i in ids for key in _keys(i)}
    for column in table.columns:
        if column != group_column and table[column].head(50).isin(wanted).mean() > 0.5:
            return dict(zip(table[column], table[group_column]))
    raise KitError(
        f"{path}: no column names the training images (looked for names like {_keys(ids[0])[0]} in "
        f"{','.join(table.columns)}); give a CSV with one row per training image"
    )


def check_group_split(groups: np.ndarray | None, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
    """A split that validates on a group it trains on is a bug, never a run: stop before a leaking figure prints."""
    if groups is None:
        return
    shared = set(groups[train_idx]) & set(groups[val_idx])
    if shared:
        raise KitError(f"internal error: group {sorted(shared)[0]} is in both training and validation")
