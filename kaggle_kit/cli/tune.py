"""`kaggle-kit tune`: an Optuna search over recipe fields, its trials ordinary runs in runs/<comp>/tune-<study>/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..config.flags import with_recipe_flags
from ..core.errors import KitError
from .options import QUIET, apply_quiet


def tune(
    competition: Optional[str] = typer.Argument(None, help="cifar10, dog_breed, a slug or a competition URL"),
    space: Optional[Path] = typer.Option(
        None, metavar="SPACE.toml", help="the fields to search and their distributions (competitions/*/spaces/)"
    ),
    trials: Optional[int] = typer.Option(None, metavar="N", help="stop at N trials complete or pruned, all workers"),
    timeout: Optional[float] = typer.Option(None, metavar="SECONDS", help="this worker starts no trial after this"),
    study: Optional[str] = typer.Option(None, metavar="NAME", help="the study's name (default: the space's file name)"),
    storage: Optional[str] = typer.Option(
        None,
        metavar="URL",
        envvar="KAGGLE_KIT_TUNE_STORAGE",
        help="postgresql://USER:PASSWORD@HOST/DB for workers on several machines (default: a journal file in the "
        "study folder); also read from $KAGGLE_KIT_TUNE_STORAGE, which keeps the password out of `ps`",
    ),
    folds: Optional[int] = typer.Option(None, metavar="K", help="each trial a K-fold group, scored by its OOF metric"),
    resume: Optional[Path] = typer.Option(None, metavar="STUDY_DIR", help="continue this study with its own settings"),
    report: Optional[Path] = typer.Option(
        None, metavar="STUDY_DIR", help="write the study's trials table, best train command and plots (STUDY/report)"
    ),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="ADDRESS", help="each trial a task on this Ray cluster (auto: the one `ray start` began)"
    ),
    track: Optional[list[str]] = typer.Option(
        None, "--track", metavar="mlflow|tensorboard", help="log each trial's run (MLflow tags study, trial, params)"
    ),
    heartbeat: int = typer.Option(60, metavar="SECONDS", help="with --storage: a worker silent 2x this has died"),
    data_dir: Optional[Path] = typer.Option(None, help="data folder or download zip (default data/<slug>)"),
    recipe: Optional[str] = typer.Option(None, help="named recipe the trials start from (default: the competition's)"),
    quiet: bool = QUIET,
    **overrides,
) -> None:
    """Search recipe settings with Optuna (TPE, pruning); every trial is a run you can predict from."""
    from ..core.invocation import arguments, set_arguments
    from ..study import tune as tuning
    from ..study.tune_storage import redact_arguments

    apply_quiet(quiet)
    # every trial's config.json records the command line: never with the database password (main restores it)
    set_arguments(redact_arguments(arguments()))
    if heartbeat < 1:
        raise typer.BadParameter(f"--heartbeat {heartbeat}: give 1 second or more")
    if report:
        return _report(report, storage)
    if resume:
        given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
        given += [n for n, v in (("COMPETITION", competition), ("--space", space), ("--study", study)) if v]
        given += [n for n, v in (("--folds", folds), ("--recipe", recipe)) if v is not None]
        if given:
            raise KitError(
                f"--resume {resume} continues the study with its study.json settings, so {', '.join(given)} "
                "would be ignored: drop them (or start another --study)"
            )
        plan = tuning.load_plan(resume, data_dir)
    else:
        if not competition or space is None:
            raise typer.BadParameter("give a COMPETITION and --space SPACE.toml (or --resume STUDY_DIR)")
        plan = tuning.plan_study(competition, space, study, storage, data_dir, recipe, folds, **overrides)
    if plan.folds and plan.space.pruner != "none":
        print(
            f"note: pruner {plan.space.pruner} unused: folds are not pruned (each trial is scored by its OOF)",
            file=sys.stderr,
        )
    print(f"study {plan.study}: {plan.path} ({plan.storage or 'journal file ' + str(plan.path / 'journal.log')})")
    summary = tuning.run_study(plan, trials, timeout, storage, heartbeat, ray, track)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items()))
    print(f"trials: {counts or 'none'}")
    if summary.best_number is not None:
        from ..competitions.bootstrap import describe_figure
        from ..competitions.registry import resolve

        figure = describe_figure(resolve(plan.competition).metric, summary.best_interval, summary.best_value)
        params = ", ".join(f"{k}={v}" for k, v in summary.best_params.items())
        print(f"best: trial {summary.best_number}, {figure} ({params})")
        print(f"run: {summary.best_run}")


def _report(study_dir: Path, storage: str | None) -> None:
    from ..study.tune_report import write_report

    written = write_report(study_dir, storage)
    counts: dict[str, int] = {}
    for row in written.rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    print(f"{len(written.rows)} trials ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})")
    print(f"table: {written.folder / 'trials.md'} (and trials.csv)")
    for note in written.notes:
        print(f"note: {note}")
    if written.plots:
        print(f"plots: {', '.join(p.name for p in written.plots)}")
    if written.best_command:
        print(f"best trial again: {written.best_command}")


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(with_recipe_flags(tune))
