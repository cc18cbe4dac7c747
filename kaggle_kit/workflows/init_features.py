"""`init`'s tabular columns: the labels CSV's other columns listed, and those `--features` names declared.

A feature is read from the labels CSV for training and from the test CSV (`test_table`, test.csv) at predict time,
so a declared column must be in both: SIIM-ISIC's `diagnosis` and `benign_malignant` are in train.csv alone (they
give the answer away), and are listed as such and refused by `--features`.
"""

from __future__ import annotations

from dataclasses import replace

from ..competitions.registry import Competition
from ..core.errors import KitError
from ..data.layout import Layout, small_file
from ..data.sample_submission import read_csv_cells


def _header(layout: Layout, comp: Competition, name: str) -> list[str] | None:
    """The columns of the download's CSV `name` (None: the download has no such file)."""
    try:
        path = small_file(layout.root, comp, name, layout.work_dir)
    except KitError:
        return None
    return [str(c) for c in read_csv_cells(path).columns]


def other_columns(layout: Layout, comp: Competition) -> list[str]:
    """The labels CSV's columns that are neither the id, the answer (the sample's columns) nor the group."""
    if not comp.labels_in_csv:
        return []
    answer = set(_header(layout, comp, comp.sample_file) or []) | {comp.id_column, comp.label_column, comp.group_column}
    return [c for c in _header(layout, comp, comp.label_file) or [] if c not in answer]


def declare_features(layout: Layout, comp: Competition, given: tuple[str, ...] | None) -> Competition:
    """`comp` with the `given` feature columns, each checked against the labels CSV and the test CSV."""
    if not given:
        return comp
    if not comp.labels_in_csv:
        raise KitError(
            f"--features: the labels of {comp.name} are {comp.label_source}, so no labels CSV holds tabular "
            "columns: drop --features"
        )
    others = other_columns(layout, comp)
    for name in given:
        if name not in others:
            listed = ", ".join(others) or "none"
            raise KitError(
                f"--features {name}: {comp.label_file} has no such feature column (its other columns: {listed}); "
                "pass names from that list, separated by commas"
            )
    test = _header(layout, comp, comp.test_table)
    if test is None:
        raise KitError(
            f"--features: the download has no {comp.test_table} to read the features of the test images from; "
            "drop --features, or name the test CSV as files.test_table in the declaration"
        )
    absent = [name for name in given if name not in test]
    if absent:
        raise KitError(
            f"--features {absent[0]}: {comp.test_table} has no such column (header {','.join(test)}), and predict "
            f"reads every feature from it: drop {absent[0]} from --features"
        )
    return replace(comp, features=tuple(given))


def features_text(layout: Layout, comp: Competition) -> str:
    """init's line on the tabular columns: those declared, or those it could declare."""
    others = other_columns(layout, comp)
    if comp.features:
        return f"features: {', '.join(comp.features)} (from {comp.label_file}, and {comp.test_table} at predict time)"
    if not others:
        return "features: none (the labels CSV has no other columns)"
    test = set(_header(layout, comp, comp.test_table) or [])
    both = [c for c in others if c in test]
    alone = [c for c in others if c not in test]
    said = f"also in {comp.test_table}: {', '.join(both) or 'none'}"
    said += f"; in {comp.label_file} alone: {', '.join(alone)}" if alone else ""
    return f"features: none declared; other columns of {comp.label_file} ({said}): pass --features COL,... to use them"
