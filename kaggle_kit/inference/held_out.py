"""The groups of held-out images, so that their bootstrap intervals and cross-fits draw whole groups.

Images of one patient, driver or subject are not independent: resampling them one by one would make an interval
too narrow, and a fit cross-fitted across parts that share a group would be scored on what it saw."""

from __future__ import annotations

import numpy as np

from ..competitions.declaration import Competition
from ..core.errors import KitError


def held_out_groups(comp: Competition, layout, ids: list[str]) -> np.ndarray | None:
    """The declared group of each id, read from the labels CSV's group column; None where no group column is
    declared (every image its own group)."""
    if not comp.group_column or comp.label_source != "csv":
        return None
    from ..data.labels import read_csv

    table = read_csv(layout.labels_path, "labels")
    if comp.group_column not in table.columns:
        raise KitError(
            f"{layout.labels_path}: no column {comp.group_column!r}, which {comp.name} declares as its group column; "
            f"download the labels file again"
        )
    by_id = dict(zip(table[comp.id_column].astype(str), table[comp.group_column].astype(str)))
    missing = [i for i in ids if str(i) not in by_id]
    if missing:
        raise KitError(f"{layout.labels_path}: held-out id {missing[0]} has no row ({len(missing)} such): other data")
    return np.array([by_id[str(i)] for i in ids], dtype=str)
