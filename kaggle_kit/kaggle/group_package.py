"""A fold group as `package` ships it: every fold's run and the group files `predict GROUP` reads, or a one-line
refusal naming what to finish first.

What the notebook's `predict GROUP` needs besides the folds: folds.json (K), cv.json (a target kind's fit over
the OOF values: thresholds, cut points, the new-class threshold) and, for one label per image, oof_predictions.npz
(the OOF temperature the averaged logits are softmaxed at).
"""

from __future__ import annotations

from pathlib import Path

from ..competitions.registry import resolve
from ..core.errors import KitError
from ..records.group_folder import CV_FILE, FOLDS_FILE, OOF_FILE, FoldGroup
from ..records.run_folder import RunDir
from .package import Source, _checked_config


def checked_group(path: Path, engine: str) -> Source:
    group = FoldGroup(path)
    plan = group.plan()  # unreadable: says so
    if engine != "torch":
        raise KitError(f"package --engine {engine}: {path} is a fold group, packaged for torch only: drop --engine")
    k = int(plan["folds"])
    for fold in range(1, k + 1):
        run = RunDir(group.fold_dir(fold))
        if not run.has_checkpoint("best"):
            raise KitError(
                f"{run.file('best.pt')} not found: finish the group first (`kaggle-kit train --resume {path}`)"
            )
    comp = resolve(plan["competition"])
    needed = [FOLDS_FILE, CV_FILE] + ([OOF_FILE] if comp.target == "label" else [])
    missing = [name for name in needed if not (group.path / name).is_file()]
    if missing:
        raise KitError(
            f"{group.path / missing[0]} not found: not every fold has finished - `kaggle-kit train --resume {path}`"
        )
    members = [(RunDir(group.fold_dir(fold)), f"fold-{fold}.") for fold in range(1, k + 1)]
    config = _checked_config(members[0][0])
    return Source(group.path, group.name, "group", config, members, [group.path / name for name in needed], k)
