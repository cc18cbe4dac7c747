"""Experiments: a plan (TOML) -> cells (the grid's cartesian product) x seeds -> one normal run folder each.

A plan file, e.g. `competitions/cifar10/plans/study-table2.toml`:

    competition = "cifar10"          # required: which competition
    title = "Table 2: ..."           # optional, shown in report.md
    description = "..."              # optional
    recipe = "paper"                 # the base recipe (default: the competition's default recipe)
    seeds = 3                        # runs per cell, seeds 0..seeds-1 (default 1)

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
`aug=paper,schedule=cosine`. A run folder whose history covers every epoch and that holds best.pt is
finished and skipped; one with a config.json but fewer epochs is resumed from its last checkpoint, so
rerunning the same command after a crash finishes the experiment. A run folder trained with other
settings than the plan now asks for is refused (every cell is checked before anything trains), so one
experiment folder never mixes settings.

The experiment folder also holds `experiment.json` (what was asked: plan, seeds, command-line
overrides, the run list), `plan.toml` (the plan as run), `timings.json` (wall seconds of each run as
measured here) and the report (see `report.py`).
"""

from __future__ import annotations

import difflib
import itertools
import json
import queue
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, get_type_hints

from .competition import Competition, all_competitions, resolve
from .errors import KitError
from .recipe import Recipe, apply_overrides
from .run import RunDir, atomic_write_text
from .run_config import CONFIG
from .runs import EXPERIMENT_FILE

PLAN_SUFFIX = ".toml"
PLAN_FIELDS = ("competition", "title", "description", "recipe", "seeds", "overrides", "grid", "table", "curves", "labels", "published")
PUBLISHED_FIELDS = ("source", "metric", "values", "claimed_best")
TABLE_FIELDS = ("rows", "columns")
CURVES_FIELDS = ("by",)
# set by the experiment itself, never by a plan: the seed comes from `seeds`, the name from `recipe`
RESERVED_FIELDS = ("seed", "name")
# where a run executes, not what it computes: a finished run is reused whatever these were
PLACEMENT_FIELDS = ("device", "workers")
NO_AXES_CELL = "all"
PLAN_COPY = "plan.toml"
TIMINGS_FILE = "timings.json"
SUBMISSION_FILE = "submission.csv"
DEFAULT_ROOT = Path("experiments")


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

    def cells(self) -> list["Cell"]:
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
            raise KitError(f"{where}: '{key}' cannot be set by a plan: {'use `seeds = N`' if name == 'seed' else 'the base recipe is `recipe = ...`'}")
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
        raise KitError(f"{where}: missing `competition = \"...\"` (one of {', '.join(sorted(all_competitions()))})")
    try:
        comp = resolve(str(data["competition"]))
        recipe_name = str(data.get("recipe", comp.default_recipe))
        comp.recipe(recipe_name)
    except KitError as error:
        raise KitError(f"{where}: {error}") from None

    seeds = data.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise KitError(f"{where}: seeds = {seeds!r}: give a whole number of runs per cell, 1 or more")
    overrides = _recipe_overrides(f"{where} [overrides]", data.get("overrides", {}))

    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise KitError(f"{where}: grid must be a table of axes, e.g. [grid] schedule = [\"step\", \"cosine\"]")
    axes = []
    for axis_name, values in grid.items():
        at = f"{where} [grid] {axis_name}"
        if not isinstance(values, list) or not values:
            raise KitError(f"{at}: give a non-empty list of values, e.g. {axis_name} = [\"a\", \"b\"]")
        if axis_name.replace("-", "_") in overrides:
            raise KitError(f"{at}: also set in [overrides]; keep it in one place")
        checked = [_recipe_overrides(f"{where} [grid]", {axis_name: v})[axis_name.replace("-", "_")] for v in values]
        names = [format_value(v) for v in checked]
        if len(set(names)) != len(names):
            raise KitError(f"{at}: a value appears twice ({', '.join(names)}); list each value once")
        axes.append(Axis(axis_name.replace("-", "_"), tuple(checked)))
    axis_names = tuple(a.name for a in axes)

    table = data.get("table", {})
    _check_keys(f"{where} [table]", table, TABLE_FIELDS)
    rows = table.get("rows", [])
    rows = (rows,) if isinstance(rows, str) else tuple(rows)
    columns = table.get("columns")
    for axis in (*rows, *([columns] if columns else [])):
        if axis not in axis_names:
            raise KitError(f"{where} [table]: '{axis}' is not a grid axis{_did_you_mean(axis, axis_names)} (axes: {', '.join(axis_names) or 'none'})")
    if columns is not None and columns in rows:
        raise KitError(f"{where} [table]: '{columns}' is both a row and the column axis; use it once")
    if not table and len(axes) >= 2:
        rows, columns = axis_names[:-1], axis_names[-1]
    elif not table:
        rows, columns = axis_names, None
    elif set(rows) | ({columns} if columns else set()) != set(axis_names):
        missing = [a for a in axis_names if a not in rows and a != columns]
        raise KitError(f"{where} [table]: axis {', '.join(missing)} is neither in rows nor columns; place every grid axis")

    curves = data.get("curves", {})
    _check_keys(f"{where} [curves]", curves, CURVES_FIELDS)
    curves_by = curves.get("by", axis_names[-1] if axis_names else None)
    if curves_by is not None and curves_by not in axis_names:
        raise KitError(f"{where} [curves]: by = '{curves_by}' is not a grid axis{_did_you_mean(curves_by, axis_names)}")

    labels = data.get("labels", {})
    for axis, names in labels.items():
        if axis not in axis_names:
            raise KitError(f"{where} [labels]: '{axis}' is not a grid axis{_did_you_mean(axis, axis_names)}")
        if not isinstance(names, dict):
            raise KitError(f"{where} [labels.{axis}]: give value = \"display name\" pairs")
    labels = {axis: {str(k): str(v) for k, v in names.items()} for axis, names in labels.items()}

    plan = Plan(
        name=name, path=path, competition=comp.name, recipe=recipe_name, seeds=seeds, overrides=overrides,
        axes=tuple(axes), title=str(data.get("title", "")), description=str(data.get("description", "")).strip(),
        table_rows=tuple(rows), table_columns=columns, curves_by=curves_by, labels=labels,
    )
    published = data.get("published")
    if published is not None:
        plan = _with_published(plan, published, where)
    return plan


def _with_published(plan: Plan, table: Any, where: str) -> Plan:
    import dataclasses

    at = f"{where} [published]"
    if not isinstance(table, dict):
        raise KitError(f"{at}: expected a table with source, metric and values")
    _check_keys(at, table, PUBLISHED_FIELDS)
    values = table.get("values", {})
    if not isinstance(values, dict) or not values:
        raise KitError(f"{at}: give [published.values] with one number per cell, e.g. \"{plan.cells()[0].short_name}\" = 0.85")
    cells = plan.cells()
    by_key = {c.short_name: c.name for c in cells} | {c.name: c.name for c in cells}

    def cell_of(key: str, what: str) -> str:
        if key not in by_key:
            known = ", ".join(c.short_name for c in cells)
            raise KitError(f"{at}: {what} '{key}' is not a cell of the grid{_did_you_mean(key, by_key)} (cells: {known})")
        return by_key[key]

    numbers = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise KitError(f"{at}: {key} = {value!r}: give the published number, e.g. 0.8294")
        numbers[cell_of(key, "value for")] = float(value)
    claimed = table.get("claimed_best")
    published = Published(
        source=str(table.get("source", "")), metric=str(table.get("metric", "")), values=numbers,
        claimed_best=cell_of(str(claimed), "claimed_best") if claimed is not None else None,
    )
    return dataclasses.replace(plan, published=published)


def load_plan(path: Path | str, name: str | None = None) -> Plan:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise KitError(f"cannot read plan {path} ({error.strerror}): give a plan file or a plan name such as study-table2") from None
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
        raise KitError(f"plan file {text} not found: check the path, or give a plan name ({', '.join(sorted(shipped_plans()))})")
    if "/" in text:
        comp_name, plan_name = text.split("/", 1)
        comp = resolve(comp_name)
        candidate = comp.plans_dir / f"{plan_name}{PLAN_SUFFIX}" if comp.plans_dir else None
        if candidate and candidate.is_file():
            return candidate
        names = sorted(p.stem for p in comp.plans_dir.glob(f"*{PLAN_SUFFIX}")) if comp.plans_dir else []
        raise KitError(f"{comp.name} has no plan '{plan_name}'{_did_you_mean(plan_name, names)}: choose one of {', '.join(names) or 'none'}")
    plans = shipped_plans()
    if text in plans:
        if len(plans[text]) > 1:
            choices = " or ".join(f"{p.parent.parent.name}/{text}" for p in plans[text])
            raise KitError(f"plan '{text}' exists for several competitions: give {choices}")
        return plans[text][0]
    raise KitError(f"unknown plan '{text}'{_did_you_mean(text, plans)}: give a plan file or one of {', '.join(sorted(plans))}")


# --------------------------------------------------------------------------------------- cells and runs


@dataclass(frozen=True)
class PlannedRun:
    """One cell x seed: the recipe it trains and the run folder it trains into."""

    cell: Cell
    seed: int
    recipe: Recipe
    path: Path

    @property
    def name(self) -> str:
        return f"{self.cell.name}/seed={self.seed}"


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
    from . import models

    comp = resolve(plan.competition)
    extra = dict(overrides or {})
    if epochs is not None:
        extra["epochs"] = epochs
    for key in extra:
        if key in plan.axis_names:
            flag = "--epochs" if key == "epochs" else f"--set {key}=..."
            raise KitError(f"{flag} conflicts with the plan's grid axis '{key}' (it would make every cell alike): drop it")
        if key in RESERVED_FIELDS:
            raise KitError(f"--set {key}=...: {'use --seeds N' if key == 'seed' else 'the recipe name comes from the plan'}")
    if seeds is not None and seeds < 1:
        raise KitError(f"--seeds {seeds}: give 1 or more")
    try:
        base = comp.recipe(plan.recipe).replace(**plan.overrides)
        apply_overrides(base, extra)
    except KitError as error:
        raise KitError(f"{'--set' if extra else plan.path or plan.name}: {error}") from None
    runs = []
    for cell in plan.cells():
        for seed in range(seeds or plan.seeds):
            try:
                recipe = base.replace(**cell.values).replace(seed=seed).replace(**extra).validate()
                comp.augmentation(recipe.aug)
                models.resolve_arch(recipe.arch)
            except KitError as error:
                raise KitError(f"{plan.path or plan.name}: cell {cell.name}: {error}") from None
            runs.append(PlannedRun(cell, seed, recipe, Path(folder) / cell.folder / f"seed={seed}"))
    return runs


def run_state(run: PlannedRun, fingerprint: str | None = None) -> str:
    """"finished", "partial" (resume it), "new" or "damaged"; a folder trained with other settings, or on data
    other than the one whose `fingerprint` is given, is an error: its results would not belong in one table."""
    folder = RunDir(run.path)
    if not folder.file(CONFIG).is_file():
        return "new"
    config = folder.read_config()
    if fingerprint is not None and config.fingerprint not in (None, fingerprint):
        raise KitError(
            f"{run.path} was trained on other data ({config.data_dir}, fingerprint {config.fingerprint}) "
            f"than this --data-dir (fingerprint {fingerprint}): pass that data folder again, or another --out"
        )
    done = config.recipe_dict or {}
    wanted = run.recipe.to_dict()
    for key in wanted:
        if key in PLACEMENT_FIELDS:
            continue
        if done.get(key) != wanted[key]:
            raise KitError(
                f"{run.path} was trained with {key}={format_value(done.get(key))} but the plan now asks "
                f"{key}={format_value(wanted[key])}: delete that folder to retrain it, or pass another --out"
            )
    if len(folder.history()) < run.recipe.epochs:
        return "partial"
    # every epoch ran yet no best.pt: nothing left to resume, and nothing to predict from
    return "finished" if folder.file("best.pt").is_file() else "damaged"


# --------------------------------------------------------------------------------------- the experiment folder


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise KitError(f"{path}: unreadable ({error}); delete it and rerun the experiment") from None


def read_experiment(folder: Path | str) -> dict[str, Any]:
    folder = Path(folder)
    data = _read_json(folder / EXPERIMENT_FILE)
    if not data:
        raise KitError(f"{folder} is not an experiment folder (no {EXPERIMENT_FILE}): pass a folder made by `kaggle-kit experiment`")
    return data


def experiment_plan(folder: Path | str) -> Plan:
    """The plan an experiment folder was run with, from its copy of the plan file."""
    folder = Path(folder)
    data = read_experiment(folder)
    return load_plan(folder / PLAN_COPY, name=data["plan"])


def read_timings(folder: Path) -> dict[str, float]:
    return {str(k): float(v) for k, v in _read_json(Path(folder) / TIMINGS_FILE).items()}


def _relative(path: Path, folder: Path) -> str:
    return Path(path).relative_to(folder).as_posix()


def _write_experiment(folder: Path, plan: Plan, plan_text: str, runs: list[PlannedRun], seeds: int, epochs, overrides, data_dir) -> None:
    existing = _read_json(folder / EXPERIMENT_FILE)
    if existing and (existing.get("plan"), existing.get("competition")) != (plan.name, plan.competition):
        raise KitError(
            f"{folder} holds experiment '{existing.get('plan')}' of {existing.get('competition')}, not '{plan.name}': "
            f"pass another --out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / PLAN_COPY, plan_text)
    record = {
        "plan": plan.name,
        "plan_file": str(plan.path) if plan.path else None,
        "competition": plan.competition,
        "seeds": seeds,
        "epochs": epochs,
        "overrides": overrides,
        "data_dir": str(data_dir) if data_dir else None,
        "command": sys.argv,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "runs": [{"cell": r.cell.name, "values": r.cell.values, "seed": r.seed, "path": _relative(r.path, folder)} for r in runs],
    }
    atomic_write_text(folder / EXPERIMENT_FILE, json.dumps(record, indent=2, default=str))


class _Timings:
    """Wall seconds per run, added to across sessions (a resumed run counts its earlier session too)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.Lock()

    def add(self, run: PlannedRun, seconds: float) -> None:
        with self.lock:
            timings = read_timings(self.folder)
            key = _relative(run.path, self.folder)
            timings[key] = round(timings.get(key, 0.0) + seconds, 3)
            atomic_write_text(self.folder / TIMINGS_FILE, json.dumps(timings, indent=2, sort_keys=True))


# --------------------------------------------------------------------------------------- running


@dataclass
class ExperimentResult:
    folder: Path
    plan: str
    competition: str
    runs: int
    trained: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already finished: not trained again
    failed: dict[str, str] = field(default_factory=dict)  # run -> the error
    submitted: dict[str, float | None] = field(default_factory=dict)  # run -> Kaggle public score
    not_submitted: dict[str, str] = field(default_factory=dict)  # run -> why
    interrupted: bool = False
    seconds: float = 0.0
    report: Any = None  # report.ReportResult


def _event(on_event, **fields) -> None:
    if on_event is not None:
        on_event(fields)


class _Clock:
    """Cell k/n with an ETA from the runs trained so far (skipped ones take no time, so they are not counted)."""

    def __init__(self, total: int, parallel: int):
        self.total, self.parallel = total, max(parallel, 1)
        self.started = time.perf_counter()
        self.done = 0
        self.trained_seconds: list[float] = []
        self.lock = threading.Lock()

    def finish(self, seconds: float | None) -> dict[str, Any]:
        with self.lock:
            self.done += 1
            if seconds is not None:
                self.trained_seconds.append(seconds)
            return {"index": self.done, "total": self.total, "elapsed_s": time.perf_counter() - self.started, "eta_s": self.eta()}

    def eta(self) -> float | None:
        if not self.trained_seconds:
            return None
        mean = sum(self.trained_seconds) / len(self.trained_seconds)
        return mean * (self.total - self.done) / self.parallel


def _prediction_is_current(run: PlannedRun) -> bool:
    # the file is a pure function of best.pt and the data: reuse it unless the checkpoint is newer
    file, best = run.path / SUBMISSION_FILE, run.path / "best.pt"
    return file.is_file() and best.is_file() and file.stat().st_mtime >= best.stat().st_mtime


def _submitted_already(run: PlannedRun, sha256: str, ledger) -> str | None:
    """Why not to upload this very file of this run again: it is scored, waiting for a score, or maybe uploaded."""
    from .ledger import COMPLETE, PENDING, UPLOADING

    path = str(run.path.resolve())
    for record in reversed(ledger.records()):
        if record.sha256 != sha256 or not record.run_dir or str(Path(record.run_dir).resolve()) != path:
            continue
        if record.status == COMPLETE:
            return f"already scored by Kaggle (submission {record.kaggle_ref}, public score {record.public_score})"
        if record.status == PENDING:
            return f"submission {record.kaggle_ref} is waiting for its score: see `kaggle-kit submissions {record.competition}`"
        if record.status == UPLOADING:
            return f"an earlier upload may have reached Kaggle: run `kaggle-kit submissions {record.competition}` to find it"
    return None


def _submit_run(run: PlannedRun, plan: Plan, data_dir, ledger) -> tuple[float | None, str | None]:
    """Predict (unless the file is current) and upload one run: (public score, None), or (None, why it was not sent)."""
    from .kaggle_api import file_sha256, submit
    from .runs import recipe_summary
    from .predict import predict_run

    file = run.path / SUBMISSION_FILE
    if not _prediction_is_current(run):
        try:
            predict_run(run.path, data_dir, out=file, device=run.recipe.device)
        except KitError as error:
            return None, f"prediction failed: {error}"  # this run's problem: later runs still upload
    why = _submitted_already(run, file_sha256(file), ledger)
    if why:
        return None, why
    summary = recipe_summary(run.recipe.to_dict()) or run.recipe.name
    message = f"{plan.name} {run.name} | {summary}"
    result = submit(file, plan.competition, message, data_dir=data_dir, run_dir=run.path.resolve(), ledger=ledger)
    return result.public_score, None


def run_experiment(
    plan: Plan | Path | str,
    data_dir: Path | str | None = None,
    out: Path | str | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
    submit: bool = False,
    gpus: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    ledger=None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    status_every_s: float = 60.0,
) -> ExperimentResult:
    """Train every cell x seed of `plan` (skipping finished runs, resuming partial ones), optionally predict
    and submit each, then write the report. `gpus` runs independent runs in parallel, one per GPU, each
    logging to its own file; every `status_every_s` a "progress" event carries each running run's latest line.

    `on_event` receives plain dicts as runs start and end ({"event": "start"|"skip"|"done"|"failed"|...,
    "run", "index", "total", "eta_s", ...}); printing them is the caller's business.
    """
    from . import report
    from .layout import open_layout
    from .ledger import Ledger

    started = time.perf_counter()
    if not isinstance(plan, Plan):
        plan = load_plan(find_plan(str(plan)))
    plan_text = plan.path.read_text() if plan.path else ""
    folder = Path(out) if out else DEFAULT_ROOT / plan.name
    runs = plan_runs(plan, folder, seeds, epochs, overrides)
    comp = resolve(plan.competition)
    # the data is found (and unpacked once) before the first run, so a wrong --data-dir fails at once
    layout = open_layout(comp, data_dir)
    data_dir = layout.root
    # refuses mixed settings or data before anything trains
    states = {run.name: run_state(run, layout.fingerprint()) for run in runs}
    _write_experiment(folder, plan, plan_text, runs, seeds or plan.seeds, epochs, overrides or {}, data_dir)
    if submit:
        from .kaggle_api import credential_source

        if credential_source().kind == "none":  # fail now, not after hours of training
            raise KitError("--submit needs Kaggle credentials and none were found: `kaggle-kit doctor` says how to set them up")
    ledger = ledger or Ledger()
    result = ExperimentResult(folder, plan.name, plan.competition, len(runs))
    timings = _Timings(folder)
    to_train = [r for r in runs if states[r.name] in ("new", "partial")]
    clock = _Clock(len(runs), len(gpus) if gpus else 1)
    for run in runs:
        if states[run.name] == "finished":
            result.skipped.append(run.name)
            _event(on_event, event="skip", run=run.name, **clock.finish(None))
        elif states[run.name] == "damaged":
            why = f"{run.path} ran every epoch but has no best.pt: delete that folder to retrain it"
            result.failed[run.name] = why
            _event(on_event, event="failed", run=run.name, error=why, **clock.finish(None))
    submitting = {"on": submit}
    submit_lock = threading.Lock()

    def after_training(run: PlannedRun) -> None:
        with submit_lock:  # one upload at a time: polite to Kaggle, and the ledger reads stay simple
            if not submitting["on"]:
                result.not_submitted[run.name] = "submitting stopped after an earlier failure"
                return
            try:
                score, why = _submit_run(run, plan, data_dir, ledger)
            except KitError as error:
                # a daily limit or an outage fails every later upload too: keep training, stop uploading
                submitting["on"] = False
                result.not_submitted[run.name] = str(error)
                _event(on_event, event="submit-failed", run=run.name, error=str(error))
                return
            if why:
                result.not_submitted[run.name] = why
                return
            result.submitted[run.name] = score
            _event(on_event, event="submitted", run=run.name, public_score=score)

    try:
        if gpus:
            _run_parallel(to_train, states, comp, data_dir, gpus, result, timings, clock, on_event,
                          after_training if submit else None, folder, status_every_s)
        else:
            _run_sequential(to_train, states, comp, data_dir, result, timings, clock, on_event)
            if submit and not result.interrupted:
                for run in runs:
                    if run.name not in result.failed:
                        after_training(run)
        if gpus and submit and not result.interrupted:
            for run in runs:
                if run.name in result.skipped:
                    after_training(run)
    finally:
        result.report = report.write_report(folder, ledger=ledger)
        result.seconds = time.perf_counter() - started
    return result


def _run_sequential(runs, states, comp: Competition, data_dir, result: ExperimentResult, timings: _Timings, clock: _Clock, on_event) -> None:
    from . import trainer
    from .predict import calibrate_run

    for run in runs:
        resuming = states[run.name] == "partial"
        _event(on_event, event="start", run=run.name, resume=resuming, index=clock.done + 1, total=clock.total, eta_s=clock.eta())
        began = time.perf_counter()
        try:
            if resuming:
                trained = trainer.resume(run.path, data_dir)
            else:
                trained = trainer.train(comp, data_dir, run.recipe, out=run.path)
            if not trained.interrupted and trained.best_epoch is not None:
                # what `kaggle-kit train` does after training, so both ways of running leave the same folder
                calibrate_run(run.path, data_dir, device=run.recipe.device)
        except KitError as error:
            timings.add(run, time.perf_counter() - began)
            result.failed[run.name] = str(error)
            _event(on_event, event="failed", run=run.name, error=str(error), **clock.finish(None))
            continue
        except KeyboardInterrupt:
            trained = None
        seconds = time.perf_counter() - began
        timings.add(run, seconds)
        if trained is None or trained.interrupted:
            result.interrupted = True
            _event(on_event, event="interrupted", run=run.name)
            return
        (result.resumed if resuming else result.trained).append(run.name)
        _event(on_event, event="done", run=run.name, seconds=seconds, best_metric=trained.best_metric, **clock.finish(seconds))


# --------------------------------------------------------------------------------------- on several GPUs


def train_argv(run: PlannedRun, comp: Competition, data_dir, resume: bool) -> list[str]:
    """`kaggle-kit train` arguments that train `run` exactly: every field that differs from the base recipe."""
    if resume:
        return ["train", "--resume", str(run.path), "--data-dir", str(data_dir)]
    base = comp.recipe(run.recipe.name)
    argv = ["train", comp.name, "--recipe", run.recipe.name, "--out", str(run.path), "--data-dir", str(data_dir)]
    for key, value in run.recipe.to_dict().items():
        if key == "name" or value == getattr(base, key):
            continue
        flag = "--" + key.replace("_", "-")
        if value is None:
            raise KitError(
                f"run {run.name} sets {key}=none, which `kaggle-kit train` flags cannot express: run this plan without --gpus"
            )
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv


def run_log(folder: Path, run: PlannedRun) -> Path:
    """Where `--gpus` writes a run's output (its training, then its prediction): runs side by side would
    interleave their lines in one terminal."""
    return Path(folder) / "logs" / f"{run.path.parent.name}.{run.path.name}.log"


def _run_parallel(runs, states, comp: Competition, data_dir, gpus: list[str], result: ExperimentResult, timings: _Timings,
                  clock: _Clock, on_event, after_training, folder: Path, status_every_s: float = 60.0) -> None:
    """One `kaggle-kit train` process per GPU at a time; each GPU takes the next run as soon as it is free.
    Their output goes to their logs, so the terminal hears from each running run every `status_every_s`."""
    from .launch import how_it_ended, last_line, run_on_gpus

    argvs = {run.name: train_argv(run, comp, data_dir, states[run.name] == "partial") for run in runs}  # all checked first
    logs = {run.name: run_log(folder, run) for run in runs}
    waiting: queue.Queue = queue.Queue()
    for run in runs:
        waiting.put(run)
    stop = threading.Event()
    record_lock = threading.Lock()
    running: dict[str, str] = {}  # run name -> its GPU, while its process runs

    def worker(gpu: str) -> None:
        while not stop.is_set():
            try:
                run = waiting.get_nowait()
            except queue.Empty:
                return
            resuming = states[run.name] == "partial"
            _event(on_event, event="start", run=run.name, resume=resuming, gpu=gpu, log=str(logs[run.name]),
                   index=clock.done + 1, total=clock.total, eta_s=clock.eta())
            began = time.perf_counter()
            running[run.name] = gpu
            try:
                (code,) = run_on_gpus([argvs[run.name]], [gpu], logs=[logs[run.name]])
            finally:
                running.pop(run.name, None)
            seconds = time.perf_counter() - began
            timings.add(run, seconds)
            finished = code == 0 and run_state(run) == "finished"
            with record_lock:
                if code == 130:
                    result.interrupted = True
                    stop.set()
                    _event(on_event, event="interrupted", run=run.name)
                    return
                if not finished:
                    ended = how_it_ended(code, logs[run.name]) if code != 0 else "exited with code 0 but the run is not finished"
                    why = f"`kaggle-kit {' '.join(argvs[run.name][:2])} ...` {ended}; whole log: {logs[run.name]}"
                    result.failed[run.name] = why
                    _event(on_event, event="failed", run=run.name, error=why, **clock.finish(None))
                    continue
                (result.resumed if resuming else result.trained).append(run.name)
                _event(on_event, event="done", run=run.name, seconds=seconds, gpu=gpu, **clock.finish(seconds))
            if after_training is not None:
                if not _prediction_is_current(run):
                    # predicted in its own process on this GPU, like the training; only the upload happens here
                    run_on_gpus([["predict", str(run.path), "--data-dir", str(data_dir), "--out", str(run.path / SUBMISSION_FILE)]],
                                [gpu], logs=[logs[run.name]])
                after_training(run)

    threads = [threading.Thread(target=worker, args=(gpu,), name=f"gpu-{gpu}", daemon=True) for gpu in gpus]
    for thread in threads:
        thread.start()
    told = time.perf_counter()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=min(0.5, status_every_s))  # short joins keep Ctrl-C deliverable to the main thread
                if time.perf_counter() - told >= status_every_s:
                    told = time.perf_counter()
                    for name, gpu in list(running.items()):
                        _event(on_event, event="progress", run=name, gpu=gpu, line=last_line(logs[name]) or "starting")
    except KeyboardInterrupt:
        stop.set()
        result.interrupted = True
        for thread in threads:
            thread.join()
