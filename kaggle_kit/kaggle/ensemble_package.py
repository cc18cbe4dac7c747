"""What `package` ships for an ensemble (`ensemble`'s record): every member as `package` ships a run or a fold
group, its files prefixed `member-I.` (Kaggle datasets are flat; two members may share a folder name), and
ensemble.json, the record with each member named `member-I`, so the notebook rebuilds the members under one
folder and predicts them through `predict_ensemble` with the weights (and fit on the blend) `ensemble` chose.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import KitError
from ..records.ensemble_record import read_ensemble_record
from ..records.run_folder import RunDir
from .group_package import Source, checked_group

ENSEMBLE_FILE = "ensemble.json"


def checked_ensemble(path: Path, engine: str) -> Source:
    """The ensemble of the record at `path` with every member found and finished, else a one-line KitError."""
    record = read_ensemble_record(path)  # a member that moved: says so
    if engine != "torch":
        raise KitError(f"package --engine {engine}: {record.path} is an ensemble, packaged for torch only: drop it")
    members, named, spec, config = [], {}, [], None
    for number, member in enumerate(record.members, start=1):
        name = f"member-{number}"
        if member.kind == "fold group":
            group = checked_group(member.folder, engine)
            members += [(run, f"{name}.{prefix}") for run, prefix in group.members]
            named.update({f"{name}.{p.name}": p for p in group.extra_files})
            spec.append({"name": name, "folds": group.folds, "files": [p.name for p in group.extra_files]})
        else:
            run = RunDir(member.folder)
            if not run.has_checkpoint("best"):
                raise KitError(
                    f"{run.file('best.pt')} not found: ensemble member {member.folder} is unfinished; train it to "
                    "the end, or ensemble without it"
                )
            members.append((run, f"{name}."))
            spec.append({"name": name, "folds": None, "files": []})
        config = config or members[-1][0].read_config()
    packaged = dict(record.raw)
    packaged["members"] = [dict(row, name=s["name"]) for row, s in zip(record.raw["members"], spec)]
    name = record.path.name.removesuffix(".ensemble.json").removesuffix(".csv")
    source = Source(record.path, name, "ensemble", config, members, [])
    source.named_files, source.written = named, {ENSEMBLE_FILE: json.dumps(packaged, indent=1)}
    source.ensemble = spec
    return source
