"""`kaggle-kit tune --report STUDY`: what a study found, in STUDY/report/.

trials.csv, trials.md   one row a trial: number, state, metric, parameters, epochs trained, wall time, folder
best_command.txt        the `kaggle-kit train` command that trains the best trial's settings again
history.png, importances.png, parallel_coordinates.png   Optuna's own plots (optuna.visualization.matplotlib)
"""

from __future__ import annotations

import csv
import io
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..competitions.registry import resolve
from ..config.flags import recipe_to_argv
from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.errors import KitError
from . import tune_storage
from .tune_plan import StudyPlan, load_plan
from .tune_trial import trial_folder

REPORT = "report"
PLOTS = {
    "history.png": "plot_optimization_history",
    "importances.png": "plot_param_importances",
    "parallel_coordinates.png": "plot_parallel_coordinate",
}


@dataclass
class StudyReport:
    folder: Path
    rows: list[dict[str, Any]]
    best_command: str | None
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def write_report(study_dir: Path | str, storage_url: str | None = None) -> StudyReport:
    import optuna

    plan = load_plan(study_dir)
    if plan.storage is not None and storage_url is None:
        raise KitError(f"{plan.path} lives in {plan.storage}: pass --storage with its password again (never stored)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = tune_storage.open_storage(storage_url, plan.path)
    try:
        study = optuna.load_study(study_name=plan.study, storage=storage)
    except KeyError:
        raise KitError(f"{plan.path}: the storage holds no study {plan.study!r} (no trial has started yet)") from None
    folder = plan.path / REPORT
    folder.mkdir(exist_ok=True)
    rows = [_row(plan, trial) for trial in study.get_trials(deepcopy=False)]
    _write_tables(folder, rows, resolve(plan.competition).metric.name)
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    command = train_command(plan, study.best_trial.params) if done else None
    if command:
        atomic_write_text(folder / "best_command.txt", command + "\n")
    report = StudyReport(folder, rows, command)
    _plot(study, folder, report)
    return report


def _row(plan: StudyPlan, trial) -> dict[str, Any]:
    seconds = None
    if trial.datetime_start and trial.datetime_complete:
        seconds = round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
    state = "surplus" if trial.user_attrs.get("surplus") else trial.state.name.lower()
    pruned_value = trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None
    return {
        "trial": trial.number,
        "state": state,
        "metric": trial.value if trial.value is not None else (pruned_value if state == "pruned" else None),
        **_interval_cells(trial.user_attrs.get("interval") if trial.value is not None else None),
        **{param.name: trial.params.get(param.name) for param in plan.space.params},
        "epochs": trial.user_attrs.get("epochs"),
        "seconds": seconds,
        "run": trial_folder(plan.path, trial).name,
    }


def _interval_cells(interval: dict | None) -> dict[str, Any]:
    """A complete trial's figure's 95% bootstrap interval and n (blank for a pruned or failed one, or a trial run
    before trials stored it): two trials whose intervals overlap widely are not ranked by their order."""
    interval = interval or {}
    return {"low": interval.get("low"), "high": interval.get("high"), "n": interval.get("n")}


def _write_tables(folder: Path, rows: list[dict[str, Any]], metric: str) -> None:
    columns = list(rows[0]) if rows else ["trial", "state", "metric"]
    named = [metric if c == "metric" else c for c in columns]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(named)
    writer.writerows([[_cell(row[c]) for c in columns] for row in rows])
    atomic_write_text(folder / "trials.csv", text.getvalue())
    lines = ["| " + " | ".join(named) + " |", "|" + "---|" * len(named)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    note = (
        "low, high: the metric's 95% bootstrap interval over the n validation images (OOF images for folds). "
        "A pruned trial's metric is its last reported epoch's; a surplus trial was ended unrun at the cap."
    )
    atomic_write_text(folder / "trials.md", "\n".join(lines) + f"\n\n{note}\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def train_command(plan: StudyPlan, params: dict[str, Any]) -> str:
    """`kaggle-kit train` with the study's fixed flags and the trial's parameters: the same run again."""
    argv = ["kaggle-kit", "train", plan.competition]
    argv += ["--data-dir", plan.data_dir] if plan.data_dir else []
    argv += ["--recipe", plan.recipe] if plan.recipe else []
    argv += ["--folds", str(plan.folds)] if plan.folds else []
    return shlex.join(argv + recipe_to_argv({**plan.fixed, **params}))


def _plot(study, folder: Path, report: StudyReport) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    for name, function in PLOTS.items():
        try:
            with warnings.catch_warnings():  # Optuna calls its matplotlib plots experimental
                warnings.simplefilter("ignore")
                axes = getattr(plots, function)(study)
        except (ValueError, RuntimeError) as error:  # too few finished trials for importances, say
            report.notes.append(f"no {name}: {str(error).splitlines()[0]}")
            continue
        figure = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
        figure.set_size_inches(9, 5)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        atomic_write_bytes(folder / name, buffer.getvalue())
        report.plots.append(folder / name)
