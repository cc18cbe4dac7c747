"""`init`'s group column: the column naming each training image's group (a driver, a patient), found or given.

A hidden test set of new drivers or patients (State Farm, SIIM-ISIC) scores a model on groups it never saw, so a
validation split sharing groups with training prints a figure the leaderboard never reaches. `init` applies a
column whose name says it is a group (subject, patient_id, driver, ...) and whose values are ids, several images
each - never a 0/1 flag such as PetFinder's `Group` - from the labels CSV or another CSV naming the training
images (State Farm's `driver_imgs_list.csv`). `--group-column` (with `--groups CSV`) says which; `--no-groups`
turns it off.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..competitions.registry import Competition
from ..core.errors import KitError
from ..data.groups import why_not_groups
from ..data.layout import small_file, work_dir_for
from ..data.sample_submission import read_csv_cells

GROUP_NAME = re.compile(
    r"^(subject|subject_?id|patient|patient_?id|driver|driver_?id|group|group_?id|person|person_?id|"
    r"individual|user|user_?id|case|case_?id|study|study_?id|site)$",
    re.IGNORECASE,
)


def find_groups(
    root: Path, comp: Competition, train_files: set[str], column: str | None, csv: str | None, off: bool
) -> Competition:
    """`comp` with its group column (and the CSV holding it, where that is not the labels CSV), or without one."""
    if off:
        return replace(comp, group_column=None, group_file="")
    if csv and not column:
        raise KitError(f"--groups {csv}: pass --group-column COL too, naming the column of {csv} holding the group")
    names = [csv] if csv else _csvs_naming_images(root, comp)
    for name in names:
        frame = _read(root, comp, name)
        if column and column not in frame.columns:
            if csv:
                raise KitError(f"--group-column {column}: {csv} has no such column (header {','.join(frame.columns)})")
            continue
        chosen = column or next((c for c in frame.columns if _looks_like_groups(frame, c)), None)
        if chosen is None:
            continue
        if not _maps_images(frame, chosen, name, train_files, bool(csv or column)):
            continue
        if column and not _usable(frame, column, comp, train_files):
            return replace(comp, group_column=None, group_file="")
        return replace(comp, group_column=chosen, group_file="" if name == comp.label_file else name)
    if column:
        raise KitError(
            f"--group-column {column}: no CSV naming the training images has it ({', '.join(names) or 'none'}); "
            "pass --groups CSV to say which file holds it"
        )
    return comp


def _maps_images(frame: pd.DataFrame, chosen: str, name: str, train_files: set[str], given: bool) -> bool:
    """A column of `name` names the training images; where the group column was given, an error if none does."""
    if _image_column(frame, chosen, train_files) is not None:
        return True
    if not given:
        return False
    raise KitError(
        f"--group-column {chosen}: no column of {name} names the training images (header "
        f"{','.join(frame.columns)}); give the CSV mapping each training image to its group"
    )


def _usable(frame: pd.DataFrame, column: str, comp: Competition, train_files: set[str]) -> bool:
    """--group-column COL can group the images: an error where it cannot (the label, a 0/1 flag), a warning and no
    groups where it would change nothing (one image per value)."""
    classes = {f.split("/")[0] for f in train_files if "/" in f} if comp.label_source == "folders" else set()
    found = why_not_groups(column, frame[column], comp.label_column if comp.labels_in_csv else None, sorted(classes))
    if found is None:
        return True
    reason, fatal = found
    if fatal:
        raise KitError(
            f"--group-column {column}: {reason}; pass the column naming each image's driver or patient, or leave "
            "--group-column out"
        )
    print(f"warning: --group-column {column}: {reason}, so no group column is declared", file=sys.stderr)
    return False


def _read(root: Path, comp: Competition, name: str) -> pd.DataFrame:
    return read_csv_cells(small_file(root, comp, name, work_dir_for(comp, root)))


def _csvs_naming_images(root: Path, comp: Competition) -> list[str]:
    """The labels CSV first, then every other CSV (not the sample) in the download."""
    names = {p.name for p in root.glob("*.csv")} | {v for v in comp.nested_archives.values() if v.endswith(".csv")}
    names.discard(comp.sample_file)
    return sorted(names, key=lambda n: (n != comp.label_file, n))


def _looks_like_groups(frame: pd.DataFrame, column: str) -> bool:
    """Named like a group, holding ids rather than a flag or a number, and several rows to a value."""
    if not GROUP_NAME.match(str(column).strip()):
        return False
    values = frame[column].astype(str)
    if set(values) <= {"0", "1", "True", "False", "true", "false", ""}:
        return False  # a 0/1 flag (PetFinder's `Group`: several pets in the photo), never a group of images
    distinct = values.nunique()
    return 2 <= distinct and len(values) >= 2 * distinct


def _image_column(frame: pd.DataFrame, group_column: str, train_files: set[str]) -> str | None:
    keys = set()
    for name in train_files:
        base = name.rsplit("/", 1)[-1]
        keys.update((base, base.rsplit(".", 1)[0]))
    for column in frame.columns:
        if column != group_column and frame[column].astype(str).head(50).isin(keys).mean() > 0.5:
            return column
    return None


def group_text(comp: Competition, groups) -> str:
    """init's line on what it applied."""
    if not comp.group_column:
        return "groups: none (validation images are drawn one by one; pass --group-column COL if images come in groups)"
    where = comp.group_file or comp.label_file
    sizes = pd.Series(groups).value_counts()
    return (
        f"groups: column {comp.group_column!r} of {where} ({len(sizes)} groups, {sizes.min()}-{sizes.max()} images "
        "each): validation never shares a group with training; --no-groups turns it off"
    )
