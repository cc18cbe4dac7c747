"""A plan's cells x seeds as planned runs (each a run folder, or with `folds` a fold group), and the state of
each on disk: new, partial (resume it), finished, or trained with other settings (refused). The plan's own
format is `plan.py`'s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..competitions.registry import Competition, resolve
from ..config.recipe import Recipe, apply_overrides
from ..core.errors import KitError
from ..records.group_folder import CV_FILE, FoldGroup, is_group
from ..records.run_config import CONFIG
from ..records.run_folder import HISTORY, RunDir
from .plan import (
    FOLDS_KEY,
    PLACEMENT_FIELDS,
    RESERVED_FIELDS,
    SUBMISSION_FILE,
    Cell,
    Plan,
    format_value,
    recipe_value,
)


@dataclass(frozen=True)
class PlannedRun:
    """One cell x seed: the recipe it trains and the run folder it trains into (with `folds`, a fold group)."""

    cell: Cell
    seed: int
    recipe: Recipe
    path: Path
    folds: int | None = None

    @property
    def name(self) -> str:
        return f"{self.cell.name}/seed={self.seed}"

    @property
    def epochs_planned(self) -> int:
        return self.recipe.epochs * (self.folds or 1)

    def histories(self) -> list[Path]:
        """The history.csv files its epochs are recorded in: the run's, or each fold's."""
        if self.folds:
            return [self.path / f"fold-{fold}" / HISTORY for fold in range(1, self.folds + 1)]
        return [self.path / HISTORY]


def parse_set(assignments: list[str] | None) -> dict[str, Any]:
    """`["lr=0.05", "ema=none"]` -> {"lr": "0.05", "ema": None}; values are converted by the Recipe."""
    overrides: dict[str, Any] = {}
    for text in assignments or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise KitError(f"--set {text}: write key=value, e.g. --set lr=0.05")
        overrides[key.strip().replace("-", "_")] = recipe_value(key.strip(), value.strip())
    return overrides


def plan_runs(
    plan: Plan,
    folder: Path,
    seeds: int | None = None,
    epochs: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[PlannedRun]:
    """Every cell x seed of `plan` with its resolved recipe, checked before anything trains.

    Precedence: base recipe < [overrides] < the cell's grid values < seed < `epochs` / `overrides`
    (the command line). A command-line setting may not overwrite a grid axis: every cell would be alike.
    """
    from ..models import factory as models

    comp = resolve(plan.competition)
    extra = dict(overrides or {})
    if epochs is not None:
        extra["epochs"] = epochs
    _check_command_line(plan, extra)
    if seeds is not None and seeds < 1:
        raise KitError(f"--seeds {seeds}: give 1 or more")
    try:
        base = comp.recipe(plan.recipe).replace(**plan.overrides)
        apply_overrides(base, extra)
    except KitError as error:
        raise KitError(f"{'--set' if extra else plan.path or plan.name}: {error}") from None
    runs = []
    for cell in plan.cells():
        settings = {axis: value for axis, value in cell.values.items() if axis != FOLDS_KEY}
        folds = cell.values.get(FOLDS_KEY, plan.folds)
        for seed in range(seeds or plan.seeds):
            try:
                recipe = base.replace(**settings).replace(seed=seed).replace(**extra).validate()
                comp.augmentation(recipe.aug)
                models.resolve_arch(recipe.arch)
            except KitError as error:
                raise KitError(f"{plan.path or plan.name}: cell {cell.name}: {error}") from None
            if folds and recipe.full_train:
                raise KitError(
                    f"{plan.path or plan.name}: cell {cell.name}: folds = {folds} holds out every fold in turn, so "
                    "full_train cannot apply: drop `folds` or full_train"
                )
            runs.append(PlannedRun(cell, seed, recipe, Path(folder) / cell.folder / f"seed={seed}", folds))
    return runs


def _check_command_line(plan: Plan, extra: dict[str, Any]) -> None:
    """`--epochs` and `--set` may not overwrite a grid axis (every cell would be alike) or what the plan names."""
    for key in extra:
        if key in plan.axis_names:
            flag = "--epochs" if key == "epochs" else f"--set {key}=..."
            raise KitError(
                f"{flag} conflicts with the plan's grid axis '{key}' (it would make every cell alike): drop it"
            )
        if key in RESERVED_FIELDS:
            raise KitError(
                f"--set {key}=...: {'use --seeds N' if key == 'seed' else 'the recipe name comes from the plan'}"
            )


def check_plan_folds(plan: Plan, runs: list[PlannedRun], comp, layout) -> None:
    """Every fold count the plan asks for can hold out every class (or group) of this data: checked before
    anything trains, as `train --folds K` checks it."""
    from ..workflows.cross_validation import check_folds

    for k in sorted({run.folds for run in runs if run.folds}):
        try:
            check_folds(comp, layout, k)
        except KitError as error:
            raise KitError(f"{plan.path or plan.name}: {str(error).replace('--folds ', 'folds = ')}") from None


def run_state(run: PlannedRun, fingerprint: str | None = None) -> str:
    """ "finished", "partial" (resume it), "new" or "damaged"; a folder trained with other settings, or on data
    other than the one whose `fingerprint` is given, is an error: its results would not belong in one table."""
    if run.folds or is_group(run.path):
        return _group_state(run, fingerprint)
    folder = RunDir(run.path)
    if not folder.file(CONFIG).is_file():
        return "new"
    config = folder.read_config()
    _check_data(run, config.fingerprint, config.data_dir, fingerprint)
    # the plan asks for the recipe before it is fitted to the data (competitions.resolution): compare with that
    _check_recipe(run, config.requested_recipe or config.recipe_dict or {})
    if len(folder.history()) < run.recipe.epochs:
        return "partial"
    if not folder.file("best.pt").is_file():
        return "damaged"  # every epoch ran yet no best.pt: nothing left to resume, and nothing to predict from
    from ..training.entry import after_training_done  # training's imports only where a run is looked at

    # stopped (killed, the disk full) while calibrating or analysing: resumed, which does those again
    unfinished = folder.has_checkpoint("last") and not after_training_done(folder, config)
    return "partial" if unfinished else "finished"


def _check_data(run: PlannedRun, theirs: str | None, their_dir, fingerprint: str | None) -> None:
    if fingerprint is not None and theirs not in (None, fingerprint):
        raise KitError(
            f"{run.path} was trained on other data ({their_dir}, fingerprint {theirs}) "
            f"than this --data-dir (fingerprint {fingerprint}): pass that data folder again, or another --out"
        )


def _check_recipe(run: PlannedRun, done: dict[str, Any]) -> None:
    wanted = run.recipe.to_dict()
    for key in wanted:
        if key in PLACEMENT_FIELDS:
            continue
        if done.get(key, getattr(Recipe(), key)) != wanted[key]:
            raise KitError(
                f"{run.path} was trained with {key}={format_value(done.get(key))} but the plan now asks "
                f"{key}={format_value(wanted[key])}: delete that folder to retrain it, or pass another --out"
            )


def _group_state(run: PlannedRun, fingerprint: str | None) -> str:
    """A planned fold group's state: "new" (no folds.json), "partial" (a fold to train or resume, or the OOF and
    CV still to write) or "finished"; a single run where a group is planned (or the reverse) is an error."""
    from ..workflows.cross_validation import unfinished_folds

    if not is_group(run.path):
        if RunDir(run.path).file(CONFIG).is_file():
            raise KitError(
                f"{run.path} is a single run but the plan asks a {run.folds}-fold group there: delete that folder "
                "to retrain it, or pass another --out"
            )
        return "new"
    group = FoldGroup(run.path)
    stored = group.plan()
    if not run.folds or int(stored["folds"]) != run.folds:
        asked = f"folds = {run.folds}" if run.folds else "a single run"
        raise KitError(
            f"{run.path} is a {stored['folds']}-fold group but the plan now asks {asked}: delete that folder to "
            "retrain it, or pass another --out"
        )
    _check_data(run, stored.get("fingerprint"), stored.get("data_dir"), fingerprint)
    comp = resolve(stored["competition"])
    _check_recipe(run, comp.recipe(stored.get("recipe")).replace(**stored.get("overrides") or {}).to_dict())
    return "partial" if unfinished_folds(group) or group.cv() is None else "finished"


def prediction_is_current(run: PlannedRun) -> bool:
    # the file is a pure function of best.pt (a group: its folds, summed up in cv.json) and the data: reuse it
    # unless that is newer
    file, best = run.path / SUBMISSION_FILE, run.path / (CV_FILE if run.folds else "best.pt")
    return file.is_file() and best.is_file() and file.stat().st_mtime >= best.stat().st_mtime


# --------------------------------------------------------------------------------------- fold groups


@dataclass
class GroupTrained:
    """A planned fold group after `train_group`, read as a run's training result."""

    interrupted: bool
    best_metric: float | None  # the OOF metric, once every fold has finished


def recipe_changes(run: PlannedRun, comp: Competition) -> dict[str, Any]:
    """The fields of `run`'s recipe that differ from its named base recipe: what `train` flags or folds.json say."""
    base = comp.recipe(run.recipe.name)
    return {key: value for key, value in run.recipe.to_dict().items() if key != "name" and value != getattr(base, key)}


def planned_group(run: PlannedRun, comp: Competition, data_dir) -> FoldGroup:
    """The run's fold group: folds.json written as `train --folds K --out` writes it, unless the group exists."""
    from ..workflows.cross_validation import plan_group

    if is_group(run.path):
        return FoldGroup(run.path)
    changes = recipe_changes(run, comp)
    unset = next((key for key, value in changes.items() if value is None), None)
    if unset:  # folds.json records the flags given, and a flag cannot say none
        raise KitError(
            f"run {run.name} sets {unset}=none, which a fold group's settings cannot record: set it in the base "
            "recipe, or drop `folds` from the plan"
        )
    group, _ = plan_group(comp, data_dir, run.recipe.name, run.path, run.folds, **changes)
    return group


def train_group(run: PlannedRun, comp: Competition, data_dir) -> GroupTrained:
    """The planned group made (or found), its unfinished folds trained or resumed one after another, then, with
    every fold finished, its OOF predictions and CV summary: what `train --folds K --out` does."""
    from ..workflows.cross_validation import finish_group, train_folds

    group = planned_group(run, comp, data_dir)
    result = train_folds(group, None, data_dir)
    if result.interrupted is not None:
        return GroupTrained(True, None)
    summary = group.cv() if not result.trained else None  # nothing new: the stored OOF and CV stand
    summary = summary or finish_group(group, data_dir, device=run.recipe.device)
    return GroupTrained(False, summary["oof_metric"] if summary else None)
