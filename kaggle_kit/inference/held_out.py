"""The groups of held-out images, so that their bootstrap intervals and cross-fits draw whole groups.

Images of one patient, driver or subject are not independent: resampling them one by one would make an interval
too narrow, and a fit cross-fitted across parts that share a group would be scored on what it saw. The groups are
read by `data.groups` exactly as the split read them (a labels CSV column, or a folder-labelled download's own
group file such as State Farm's driver_imgs_list.csv)."""

from __future__ import annotations

import numpy as np

from ..competitions.declaration import Competition
from ..core.errors import KitError
from ..data.groups import image_groups


def held_out_groups(comp: Competition, layout, ids: list[str]) -> np.ndarray | None:
    """The declared group of each held-out id (training ids, in `ids`' order); None where no group column is
    declared (every image its own group)."""
    if not comp.group_column:
        return None
    groups = image_groups(layout)
    by_id = dict(zip(map(str, layout.train.ids), groups))
    missing = [i for i in ids if str(i) not in by_id]
    if missing:
        raise KitError(f"{layout.labels_path}: held-out id {missing[0]} has no row ({len(missing)} such): other data")
    return np.array([by_id[str(i)] for i in ids], dtype=str)
