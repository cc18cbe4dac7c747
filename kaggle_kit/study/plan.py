"""Experiment plans: a plan (TOML) -> cells (the grid's cartesian product) x seeds -> one run folder each.

The runner (`experiment.run_experiment`) trains them; the report (`report.py`) reads them back. Both import
this module, and neither the other's runner nor its report, so the two never import each other.

A plan file, e.g. `competitions/cifar10/plans/study-table2.toml`:

    competition = "cifar10"          # required: which competition
    title = "Table 2: ..."           # optional, shown in report.md
    description = "..."              # optional
    recipe = "paper"                 # the base recipe (default: the competition's default recipe)
    seeds = 3                        # runs per cell, seeds 0..seeds-1 (default 1)
    folds = 5                        # optional: each cell x seed a K-fold group (its OOF metric), not one run;
                                     # or a grid axis, e.g. [grid] folds = [3, 5]

    [overrides]                      # Recipe fields set for every cell
    epochs = 20

    [grid]                           # axes, in this order: every combination is a cell
    aug = ["none", "paper"]
    schedule = ["constant", "step", "cosine"]

    [table]                          # the report's table shape (default: last axis = columns, others = rows)
    rows = ["aug"]
    columns = "schedule"

    [curves]                         # the Figure 2 panels: one line per value of this axis (default: last axis)
    by = "schedule"

    [labels.aug]                     # display names for axis values (optional)
    none = "no augmentation"

    [published]                      # the study's numbers, shown beside ours
    source = "..."                   # where they come from
    metric = "Kaggle accuracy"       # what they measure (the competition metric's direction applies)
    claimed_best = "none/cosine"     # optional: the cell the study itself called best
    [published.values]               # cell -> number; a cell is its values joined by "/" in axis order
    "none/constant" = 0.8294         # (or its full name "aug=none,schedule=constant")

TOML has no null: the string "none" sets an optional field (ema, grad_clip, ...) to None.

Each cell x seed trains into `<experiment>/<cell>/seed=<k>/`, where a cell is named by its values, e.g.
`aug=paper,schedule=cosine`; with `folds` that folder is a fold group (folds.json, fold-1/ ... fold-K/,
oof_predictions.npz, cv.json), exactly as `train --folds K --out` makes it, and the group's OOF metric is
the cell's figure. A run folder whose history covers every epoch and that holds best.pt is finished and
skipped (a group: every fold finished and cv.json written); one with a config.json but fewer epochs is
resumed from its last checkpoint (a group: its unfinished folds, as `train --resume GROUP`), so rerunning
the same command after a crash finishes the experiment. A run folder trained with other settings than the
plan now asks for is refused (every cell is checked before anything trains), so one experiment folder never
mixes settings.

The experiment folder also holds `experiment.json` (what was asked: plan, seeds, command-line
overrides, the run list), `plan.toml` (the plan as run), `timings.json` (wall seconds of each run as
measured here) and the report (see `report.py`).
"""

from __future__ import annotations

import difflib
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from ..competitions.registry import all_competitions, resolve
from ..config.recipe import Recipe, apply_overrides
from ..core.errors import KitError
from ..core.json_files import read_json_object
from ..submissions.provenance import EXPERIMENT_FILE

PLAN_SUFFIX = ".toml"
PLAN_FIELDS = (
    "competition",
    "title",
    "description",
    "recipe",
    "seeds",
    "folds",
    "overrides",
    "grid",
    "table",
    "curves",
    "labels",
    "published",
)
PUBLISHED_FIELDS = ("source", "metric", "values", "claimed_best")
TABLE_FIELDS = ("rows", "columns")
CURVES_FIELDS = ("by",)
# set by the experiment itself, never by a plan: the seed comes from `seeds`, the name from `recipe`
RESERVED_FIELDS = ("seed", "name")
# where a run executes, not what it computes: a finished run is reused whatever these were
PLACEMENT_FIELDS = ("device", "workers")
# not a recipe field: `folds = K` (or a grid axis of K values) makes each cell x seed a K-fold group
FOLDS_KEY = "folds"
NO_AXES_CELL = "all"
PLAN_COPY = "plan.toml"
TIMINGS_FILE = "timings.json"
SUBMISSION_FILE = "submission.csv"
DEFAULT_ROOT = Path("experiments")

DAMAGED = "delete it and rerun the experiment"  # what to do about an experiment file that does not read


# --------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Published:
    source: str
    metric: str
    values: dict[str, float]  # cell name -> the study's number
    claimed_best: str | None = None  # cell name the study called best, whatever its numbers say


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path | None
    competition: str
    recipe: str
    seeds: int
    overrides: dict[str, Any]
    axes: tuple[Axis, ...]
    folds: int | None = None  # plan-level K (a `folds` grid axis sets it per cell instead)
    title: str = ""
    description: str = ""
    table_rows: tuple[str, ...] = ()
    table_columns: str | None = None
    curves_by: str | None = None
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    published: Published | None = None

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(axis.name for axis in self.axes)

    def cells(self) -> list[Cell]:
        if not self.axes:
            return [Cell({})]
        combos = itertools.product(*(axis.values for axis in self.axes))
        return [Cell(dict(zip(self.axis_names, combo))) for combo in combos]

    def label(self, axis: str, value: Any) -> str:
        """The display name of an axis value (`[labels]`), else the value as in cell names."""
        return self.labels.get(axis, {}).get(format_value(value), format_value(value))


@dataclass(frozen=True)
class Cell:
    values: dict[str, Any]  # axis -> value, in axis order

    @property
    def name(self) -> str:
        if not self.values:
            return NO_AXES_CELL
        return ",".join(f"{axis}={format_value(value)}" for axis, value in self.values.items())

    @property
    def short_name(self) -> str:
        """The values joined by "/" in axis order: how `[published.values]` names a cell."""
        return "/".join(format_value(v) for v in self.values.values()) if self.values else NO_AXES_CELL

    @property
    def folder(self) -> str:
        # a value such as a hub model name may hold "/", which would nest folders
        return self.name.replace("/", "_")


def format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" - did you mean {' or '.join(close)}?" if close else ""


def _check_keys(where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise KitError(f"{where}: unknown field '{key}'{_did_you_mean(key, allowed)} (known: {', '.join(allowed)})")


_OPTIONAL_FIELDS = {name for name, hint in get_type_hints(Recipe).items() if "None" in str(hint)}


def recipe_value(name: str, value: Any) -> Any:
    """A plan value as the Recipe field wants it: "none" means None for optional fields (TOML has no null)."""
    key = name.replace("-", "_")
    if key in _OPTIONAL_FIELDS and isinstance(value, str) and value.lower() == "none":
        return None
    return value


def _recipe_overrides(where: str, table: Any) -> dict[str, Any]:
    """`table` as Recipe overrides, each checked against the Recipe's fields and types."""
    if not isinstance(table, dict):
        raise KitError(f"{where}: expected a table of recipe settings such as `lr = 0.05`")
    overrides = {}
    for key, value in table.items():
        if isinstance(value, (dict, list)):
            raise KitError(f"{where}: {key} must be one value, not a {'table' if isinstance(value, dict) else 'list'}")
        name = key.replace("-", "_")
        if name in RESERVED_FIELDS:
            raise KitError(
                f"{where}: '{key}' cannot be set by a plan: "
                f"{'use `seeds = N`' if name == 'seed' else 'the base recipe is `recipe = ...`'}"
            )
        overrides[name] = recipe_value(name, value)
    try:
        apply_overrides(Recipe(), overrides)
    except KitError as error:
        raise KitError(f"{where}: {error}") from None
    return overrides


def parse_plan(text: str, name: str, path: Path | None = None) -> Plan:
    """Read and check a plan's TOML text; every mistake is one KitError naming the file and field."""
    where = str(path) if path else f"plan {name}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise KitError(f"{where}: not valid TOML ({error}): fix that line") from None
    _check_keys(where, data, PLAN_FIELDS)
    if "competition" not in data:
        raise KitError(f'{where}: missing `competition = "..."` (one of {", ".join(sorted(all_competitions()))})')
    try:
        comp = resolve(str(data["competition"]))
        recipe_name = str(data.get("recipe", comp.default_recipe))
        comp.recipe(recipe_name)
    except KitError as error:
        raise KitError(f"{where}: {error}") from None

    seeds = data.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise KitError(f"{where}: seeds = {seeds!r}: give a whole number of runs per cell, 1 or more")
    folds = _fold_count(f"{where}: folds", data[FOLDS_KEY]) if FOLDS_KEY in data else None
    overrides = _recipe_overrides(f"{where} [overrides]", data.get("overrides", {}))
    axes = _axes(where, data.get("grid", {}), overrides, folds)
    axis_names = tuple(a.name for a in axes)
    rows, columns = _table_shape(where, data.get("table", {}), axis_names)
    curves_by = _curves_by(where, data.get("curves", {}), axis_names)
    labels = _labels(where, data.get("labels", {}), axis_names)
    plan = Plan(
        name=name,
        path=path,
        competition=comp.name,
        recipe=recipe_name,
        seeds=seeds,
        overrides=overrides,
        axes=tuple(axes),
        folds=folds,
        title=str(data.get("title", "")),
        description=str(data.get("description", "")).strip(),
        table_rows=tuple(rows),
        table_columns=columns,
        curves_by=curves_by,
        labels=labels,
    )
    published = data.get("published")
    if published is not None:
        plan = _with_published(plan, published, where)
    return plan


def _axes(where: str, grid: Any, overrides: dict[str, Any], folds: int | None) -> list[Axis]:
    """The [grid] table's axes, in order, each value checked as its Recipe field (or as a fold count)."""
    if not isinstance(grid, dict):
        raise KitError(f'{where}: grid must be a table of axes, e.g. [grid] schedule = ["step", "cosine"]')
    axes = []
    for axis_name, values in grid.items():
        at = f"{where} [grid] {axis_name}"
        if not isinstance(values, list) or not values:
            raise KitError(f'{at}: give a non-empty list of values, e.g. {axis_name} = ["a", "b"]')
        if axis_name.replace("-", "_") in overrides:
            raise KitError(f"{at}: also set in [overrides]; keep it in one place")
        if axis_name == FOLDS_KEY:
            if folds is not None:
                raise KitError(f"{at}: also set as `folds = {folds}` at the top of the plan; keep it in one place")
            axes.append(Axis(FOLDS_KEY, tuple(_fold_count(at, v) for v in values)))
            continue
        checked = [_recipe_overrides(f"{where} [grid]", {axis_name: v})[axis_name.replace("-", "_")] for v in values]
        names = [format_value(v) for v in checked]
        if len(set(names)) != len(names):
            raise KitError(f"{at}: a value appears twice ({', '.join(names)}); list each value once")
        axes.append(Axis(axis_name.replace("-", "_"), tuple(checked)))
    return axes


def _table_shape(where: str, table: Any, axis_names: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """The report table's (row axes, column axis): as [table] says, else the last axis as columns."""
    _check_keys(f"{where} [table]", table, TABLE_FIELDS)
    rows = table.get("rows", [])
    rows = (rows,) if isinstance(rows, str) else tuple(rows)
    columns = table.get("columns")
    for axis in (*rows, *([columns] if columns else [])):
        if axis not in axis_names:
            raise KitError(
                f"{where} [table]: '{axis}' is not a grid axis{_did_you_mean(axis, axis_names)} "
                f"(axes: {', '.join(axis_names) or 'none'})"
            )
    if columns is not None and columns in rows:
        raise KitError(f"{where} [table]: '{columns}' is both a row and the column axis; use it once")
    if not table and len(axis_names) >= 2:
        rows, columns = axis_names[:-1], axis_names[-1]
    elif not table:
        rows, columns = axis_names, None
    elif set(rows) | ({columns} if columns else set()) != set(axis_names):
        missing = [a for a in axis_names if a not in rows and a != columns]
        raise KitError(
            f"{where} [table]: axis {', '.join(missing)} is neither in rows nor columns; place every grid axis"
        )
    return tuple(rows), columns


def _curves_by(where: str, curves: Any, axis_names: tuple[str, ...]) -> str | None:
    _check_keys(f"{where} [curves]", curves, CURVES_FIELDS)
    curves_by = curves.get("by", axis_names[-1] if axis_names else None)
    if curves_by is not None and curves_by not in axis_names:
        raise KitError(f"{where} [curves]: by = '{curves_by}' is not a grid axis{_did_you_mean(curves_by, axis_names)}")
    return curves_by


def _labels(where: str, labels: Any, axis_names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    for axis, names in labels.items():
        if axis not in axis_names:
            raise KitError(f"{where} [labels]: '{axis}' is not a grid axis{_did_you_mean(axis, axis_names)}")
        if not isinstance(names, dict):
            raise KitError(f'{where} [labels.{axis}]: give value = "display name" pairs')
    return {axis: {str(k): str(v) for k, v in names.items()} for axis, names in labels.items()}


def _fold_count(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        raise KitError(f"{where} = {value!r}: give a whole number of folds, 2 or more (each cell x seed a fold group)")
    return value


def _with_published(plan: Plan, table: Any, where: str) -> Plan:
    import dataclasses

    at = f"{where} [published]"
    if not isinstance(table, dict):
        raise KitError(f"{at}: expected a table with source, metric and values")
    _check_keys(at, table, PUBLISHED_FIELDS)
    values = table.get("values", {})
    if not isinstance(values, dict) or not values:
        raise KitError(
            f'{at}: give [published.values] with one number per cell, e.g. "{plan.cells()[0].short_name}" = 0.85'
        )
    cells = plan.cells()
    by_key = {c.short_name: c.name for c in cells} | {c.name: c.name for c in cells}

    def cell_of(key: str, what: str) -> str:
        if key not in by_key:
            known = ", ".join(c.short_name for c in cells)
            raise KitError(
                f"{at}: {what} '{key}' is not a cell of the grid{_did_you_mean(key, by_key)} (cells: {known})"
            )
        return by_key[key]

    numbers = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KitError(f"{at}: {key} = {value!r}: give the published number, e.g. 0.8294")
        numbers[cell_of(key, "value for")] = float(value)
    claimed = table.get("claimed_best")
    published = Published(
        source=str(table.get("source", "")),
        metric=str(table.get("metric", "")),
        values=numbers,
        claimed_best=cell_of(str(claimed), "claimed_best") if claimed is not None else None,
    )
    return dataclasses.replace(plan, published=published)


def load_plan(path: Path | str, name: str | None = None) -> Plan:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise KitError(
            f"cannot read plan {path} ({error.strerror}): give a plan file or a plan name such as study-table2"
        ) from None
    return parse_plan(text, name or path.stem, path)


def shipped_plans() -> dict[str, list[Path]]:
    """Plan files under each competition's plans folder, by plan name (a name may exist for several)."""
    found: dict[str, list[Path]] = {}
    for comp in all_competitions().values():
        folder = comp.plans_dir
        if folder and folder.is_dir():
            for path in sorted(folder.glob(f"*{PLAN_SUFFIX}")):
                found.setdefault(path.stem, []).append(path)
    return found


def find_plan(text: str) -> Path:
    """A plan file from a path, a plan name (`study-table2`) or `<competition>/<plan>`."""
    as_path = Path(text)
    if as_path.is_file():
        return as_path
    if text.endswith(PLAN_SUFFIX) or as_path.is_dir():
        raise KitError(
            f"plan file {text} not found: check the path, or give a plan name ({', '.join(sorted(shipped_plans()))})"
        )
    if "/" in text:
        comp_name, plan_name = text.split("/", 1)
        comp = resolve(comp_name)
        candidate = comp.plans_dir / f"{plan_name}{PLAN_SUFFIX}" if comp.plans_dir else None
        if candidate and candidate.is_file():
            return candidate
        names = sorted(p.stem for p in comp.plans_dir.glob(f"*{PLAN_SUFFIX}")) if comp.plans_dir else []
        raise KitError(
            f"{comp.name} has no plan '{plan_name}'{_did_you_mean(plan_name, names)}: "
            f"choose one of {', '.join(names) or 'none'}"
        )
    plans = shipped_plans()
    if text in plans:
        if len(plans[text]) > 1:
            choices = " or ".join(f"{p.parent.parent.name}/{text}" for p in plans[text])
            raise KitError(f"plan '{text}' exists for several competitions: give {choices}")
        return plans[text][0]
    raise KitError(
        f"unknown plan '{text}'{_did_you_mean(text, plans)}: give a plan file or one of {', '.join(sorted(plans))}"
    )


# --------------------------------------------------------------------------------------- the experiment folder


def read_experiment(folder: Path | str) -> dict[str, Any]:
    folder = Path(folder)
    data = read_json_object(folder / EXPERIMENT_FILE, DAMAGED)
    if not data:
        raise KitError(
            f"{folder} is not an experiment folder (no {EXPERIMENT_FILE}): "
            "pass a folder made by `kaggle-kit experiment`"
        )
    return data


def experiment_plan(folder: Path | str) -> Plan:
    """The plan an experiment folder was run with, from its copy of the plan file."""
    folder = Path(folder)
    data = read_experiment(folder)
    return load_plan(folder / PLAN_COPY, name=data["plan"])


def read_timings(folder: Path) -> dict[str, float]:
    return {str(k): float(v) for k, v in read_json_object(Path(folder) / TIMINGS_FILE, DAMAGED).items()}


def _relative(path: Path, folder: Path) -> str:
    return Path(path).relative_to(folder).as_posix()
