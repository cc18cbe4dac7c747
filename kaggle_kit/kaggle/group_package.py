"""What `package` ships (`Source`): a run, or a fold group's every fold and the group files `predict GROUP`
reads, or a one-line refusal naming what to finish first.

What the notebook's `predict GROUP` needs besides the folds: folds.json (K), cv.json (a target kind's fit over
the OOF values: thresholds, cut points, the new-class threshold) and, for one label per image, oof_predictions.npz
(the OOF temperature the averaged logits are softmaxed at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..competitions.registry import resolve
from ..core.errors import KitError
from ..records.group_folder import CV_FILE, FOLDS_FILE, OOF_FILE, FoldGroup
from ..records.run_config import CONFIG, RunConfig
from ..records.run_folder import RunDir


@dataclass
class Source:
    """What is packaged: one run, or a fold group's K runs (`members`, each with the prefix of its dataset files)."""

    path: Path
    name: str
    kind: str  # "run", "group" or "ensemble"
    config: RunConfig  # the run's, or the first fold's (competition, device)
    members: list[tuple[RunDir, str]]
    extra_files: list[Path]  # a group's own files that its prediction reads
    folds: int | None = None
    named_files: dict[str, Path] = field(default_factory=dict)  # dataset name -> file (an ensemble's members')
    written: dict[str, str] = field(default_factory=dict)  # dataset name -> text (an ensemble's record)
    ensemble: list[dict] | None = None  # an ensemble's members for the notebook: name, folds, group files


def checked_group(path: Path, engine: str) -> Source:
    """The group at `path` with every fold finished and its OOF fit made, else a KitError naming the fix."""
    group = FoldGroup(path)
    plan = group.plan()  # unreadable: says so
    if engine != "torch":
        raise KitError(f"package --engine {engine}: {path} is a fold group, packaged for torch only: drop --engine")
    k = int(plan["folds"])
    for fold in range(1, k + 1):
        run = RunDir(group.fold_dir(fold))
        absent = run.file(CONFIG) if not run.file(CONFIG).is_file() else run.file("best.pt")
        if not run.file(CONFIG).is_file() or not run.has_checkpoint("best"):
            raise KitError(f"{absent} not found: finish the group first (`kaggle-kit train --resume {path}`)")
    comp = resolve(plan["competition"])
    needed = [FOLDS_FILE, CV_FILE] + ([OOF_FILE] if comp.target == "label" else [])
    missing = [name for name in needed if not (group.path / name).is_file()]
    if missing:
        raise KitError(
            f"{group.path / missing[0]} not found: not every fold has finished - `kaggle-kit train --resume {path}`"
        )
    members = [(RunDir(group.fold_dir(fold)), f"fold-{fold}.") for fold in range(1, k + 1)]
    config = members[0][0].read_config()
    return Source(group.path, group.name, "group", config, members, [group.path / name for name in needed], k)
