"""A `tune` study's plan: what every worker trains (competition, recipe, fixed flags, space), kept in study.json.

The first worker writes study.json; every later one (another process, GPU or machine) must agree with it on what
the trials train, or be told to choose another --study. `--resume` and `--report` read it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..competitions.registry import resolve
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.run_folder import runs_root
from . import tune_storage
from .tune_space import FIXED, Space, load_space, parse_space

STUDY_FILE = "study.json"
# what workers joining a study must agree on; data_dir may differ (each machine's own copy of the data)
AGREED = ("competition", "recipe", "fixed", "folds", "space", "storage")


@dataclass(frozen=True)
class StudyPlan:
    path: Path
    competition: str
    study: str
    space: Space
    recipe: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)  # train flags every trial shares (Recipe field -> value)
    folds: int | None = None
    data_dir: str | None = None
    storage: str | None = None  # redacted: never the password

    def record(self) -> dict[str, Any]:
        return {
            "competition": self.competition,
            "study": self.study,
            "recipe": self.recipe,
            "fixed": self.fixed,
            "folds": self.folds,
            "data_dir": self.data_dir,
            "storage": self.storage,
            "space": self.space.to_dict(),
        }

    @property
    def direction(self) -> str:
        return "maximize" if resolve(self.competition).metric.higher_is_better else "minimize"


def study_path(competition: str, study: str, root: Path | str | None = None) -> Path:
    return Path(root or runs_root()) / competition / f"tune-{study}"


def plan_study(
    competition: str,
    space_path: Path | str,
    study: str | None = None,
    storage: str | None = None,
    data_dir: Path | str | None = None,
    recipe: str | None = None,
    folds: int | None = None,
    root: Path | str | None = None,
    **overrides: Any,
) -> StudyPlan:
    """The study this command joins or starts, checked before any trial: the space, the flags, the data."""
    from ..training.entry import resolve_training

    comp = resolve(competition)
    space = load_space(space_path)
    fixed = {k: v for k, v in overrides.items() if v is not None}
    _check_fixed(space, fixed)
    if folds is not None and folds < 2:
        raise KitError(f"--folds {folds}: give 2 or more folds (or leave it out for single runs)")
    if storage is not None:
        tune_storage.check_url(storage)
    probe = {p.name: p.extremes()[0] for p in space.params}
    resolve_training(comp, data_dir, recipe, {**fixed, **probe})  # a bad flag or missing data fails now
    name = study or Path(space_path).stem
    plan = StudyPlan(
        path=study_path(comp.name, name, root),
        competition=comp.name,
        study=name,
        space=space,
        recipe=recipe,
        fixed=fixed,
        folds=folds,
        data_dir=str(data_dir) if data_dir else None,
        storage=tune_storage.redact(storage),
    )
    if (plan.path / STUDY_FILE).is_file():
        write_record(plan)  # a worker joining with other settings is refused before it opens the storage
    return plan


def _check_fixed(space: Space, fixed: dict[str, Any]) -> None:
    for param in space.params:
        if param.name in fixed:
            flag = "--" + param.name.replace("_", "-")
            raise KitError(f"{space.source}: [params.{param.name}] is searched, so {flag} cannot fix it: drop one")
    if fixed.get("full_train"):
        raise KitError(f"--full-train: {FIXED['full_train']}; tune without it, then train the best trial with it")


def write_record(plan: StudyPlan) -> None:
    """study.json written, or checked against this command when the study exists (a worker joining it)."""
    path = plan.path / STUDY_FILE
    record = plan.record()
    if path.is_file():
        stored = json.loads(path.read_text())
        for key in AGREED:
            if json.dumps(stored.get(key), sort_keys=True) != json.dumps(record[key], sort_keys=True):
                raise KitError(
                    f"{plan.path} is a study with another {key} ({stored.get(key)!r}): join it with the same "
                    f"command, continue it with `kaggle-kit tune --resume {plan.path}`, or choose another --study"
                )
        return
    plan.path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def load_plan(study_dir: Path | str, data_dir: Path | str | None = None) -> StudyPlan:
    """The plan a study folder was started with (`--resume`, `--report`)."""
    study_dir = Path(study_dir)
    path = study_dir / STUDY_FILE
    if not path.is_file():
        raise KitError(f"{study_dir}: no {STUDY_FILE}; give a study folder such as runs/<competition>/tune-<study>")
    stored = json.loads(path.read_text())
    space = stored["space"]
    params = {p["name"]: _param_table(p) for p in space["params"]}
    settings = {k: space[k] for k in ("pruner", "startup_trials", "warmup_epochs", "seed")}
    return StudyPlan(
        path=study_dir,
        competition=stored["competition"],
        study=stored["study"],
        space=parse_space({**settings, "params": params}, space["source"]),
        recipe=stored["recipe"],
        fixed=stored["fixed"],
        folds=stored["folds"],
        data_dir=str(data_dir) if data_dir else stored["data_dir"],
        storage=stored["storage"],
    )


def _param_table(param: dict[str, Any]) -> dict[str, Any]:
    if param["distribution"] == "categorical":
        return {"distribution": "categorical", "choices": list(param["choices"])}
    table = {"distribution": param["distribution"], "low": param["low"], "high": param["high"]}
    return {**table, "step": param["step"]} if param.get("step") else table
