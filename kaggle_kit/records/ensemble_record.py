"""An ensemble's record (`<file>.csv.ensemble.json`, written by `ensemble`): its members (runs and fold groups,
each with its weight) and, for a target kind other than one label per image, the fit on the blend. Read here for
`predict_ensemble` and `package`, which need every member where the record says (or, packaged, under one root)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..competitions.registry import Competition, resolve
from ..core.errors import KitError
from .group_folder import is_group
from .run_config import CONFIG

RECORD_SUFFIX = ".ensemble.json"  # submissions.provenance.BLEND_SUFFIX, which is a later stage


@dataclass
class EnsembleMember:
    folder: Path
    kind: str  # "run" or "fold group"
    weight: float
    name: str


@dataclass
class EnsembleRecord:
    path: Path
    competition: Competition
    members: list[EnsembleMember]
    fitted: dict | None  # the kind's fit on the blend (None for one label per image)
    data_dir: str | None
    raw: dict


def record_path(path: Path | str) -> Path:
    """The record itself (a .json file: a packaged ensemble's is ensemble.json), or the record beside the blended
    CSV that was named."""
    path = Path(path)
    return path if path.suffix.lower() == ".json" else path.with_name(path.name + RECORD_SUFFIX)


def is_ensemble(path: Path | str) -> bool:
    path = Path(path)
    return path.is_file() and (path.name.endswith(RECORD_SUFFIX) or path.with_name(path.name + RECORD_SUFFIX).is_file())


def read_ensemble_record(path: Path | str, root: Path | None = None) -> EnsembleRecord:
    """The record with every member of non-zero weight found (under `root` by member name where given: a packaged
    ensemble), else a one-line KitError naming the member and the fix."""
    path = record_path(path)
    try:
        record = json.loads(path.read_text())
        comp, rows = resolve(record["competition"]), list(record["members"])
        named = [(Path(row["path"]), row["kind"], float(row["weight"]), str(row["name"])) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        raise KitError(f"{path} is missing or unreadable: pass the CSV `kaggle-kit ensemble` wrote") from None
    # a member weighing nothing changes no prediction: it is not rebuilt, predicted or shipped
    weighed = [i for i, (_, _, weight, _) in enumerate(named) if weight > 0] or list(range(len(named)))
    named, record = [named[i] for i in weighed], dict(record, members=[rows[i] for i in weighed])
    if comp.target != "label" and "fitted" not in record:
        raise KitError(f"{path} records no fit on the blend (an older ensemble): run `kaggle-kit ensemble` again")
    members = []
    for recorded, kind, weight, name in named:
        folder = root / name if root is not None else recorded
        if not (is_group(folder) or (folder / CONFIG).is_file()):
            raise KitError(
                f"ensemble member {recorded} is not found at {folder} (moved or deleted): put it back, or run "
                f"`kaggle-kit ensemble` again on the members where they are now"
            )
        members.append(EnsembleMember(folder, kind, weight, name))
    return EnsembleRecord(path, comp, members, record.get("fitted"), record.get("data_dir"), record)
