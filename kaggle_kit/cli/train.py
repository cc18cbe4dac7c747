"""`kaggle-kit train`: every Recipe field is a flag (`--lr`, `--batch-size`, `--freeze/--no-freeze`); the
decisions are `api.training`'s, shared with `kk.train`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..api.options import RunOptions
from ..api.training import GroupOutcome, SingleOutcome, is_launcher, launch_workers, run_training
from ..config.flags import with_recipe_flags
from .options import QUIET

TRACK_HELP = "log the run to MLflow ($MLFLOW_TRACKING_URI, else runs/mlflow.db) or TensorBoard (RUN/tensorboard)"


def train(
    competition: Optional[str] = typer.Argument(None, help="cifar10, dog_breed, a slug or a competition URL"),
    data_dir: Optional[Path] = typer.Option(
        None, help="data folder or download zip (default data/<slug>, or /kaggle/input/<slug>)"
    ),
    recipe: Optional[str] = typer.Option(
        None, help="named recipe: paper (the study's) or the competition's best (default)"
    ),
    out: Optional[Path] = typer.Option(None, help="run folder (default runs/<competition>/<time>-<arch>-<recipe>)"),
    resume: Optional[Path] = typer.Option(None, help="continue this run folder from its last checkpoint"),
    nproc: int = typer.Option(1, help="processes (GPUs) on this machine, through torchrun's launcher"),
    folds: Optional[int] = typer.Option(
        None, "--folds", metavar="K", help="K-fold cross-validation: a fold group of K runs, OOF predictions, CV score"
    ),
    fold: Optional[str] = typer.Option(
        None, "--fold", metavar="I[,J...]", help="with --folds (or --resume GROUP): train only these folds"
    ),
    gpus: Optional[str] = typer.Option(
        None, "--gpus", metavar="IDS", help="with --folds: folds side by side, one process per GPU (e.g. 0,1,2,3)"
    ),
    ray: Optional[str] = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="with --folds: each fold a task on this Ray cluster (auto: the one `ray start` began; local: a new one)",
    ),
    analyze: bool = typer.Option(
        True, "--analyze/--no-analyze", help="write the error-analysis pictures (RUN/analysis/analysis.md) at the end"
    ),
    track: Optional[list[str]] = typer.Option(
        None, "--track", metavar="mlflow|tensorboard", help=f"{TRACK_HELP}; repeatable"
    ),
    pseudo_labels: Optional[Path] = typer.Option(
        None,
        metavar="RUN_OR_GROUP",
        help="also train on the test images this run or fold group predicts confidently, labelled with its prediction",
    ),
    pseudo_threshold: Optional[float] = typer.Option(
        None, help="calibrated probability a test image needs to be pseudo-labelled, in (0, 1] (default 0.9)"
    ),
    hooks: Optional[list[str]] = typer.Option(
        None, "--hook", metavar="MODULE:CLASS", help="a training hook to add, imported by name; repeatable"
    ),
    quiet: bool = QUIET,
    **overrides,
) -> None:
    """Train a model; every recipe setting can be overridden by its flag."""
    if nproc < 1:
        raise typer.BadParameter(f"--nproc {nproc}: give 1 or more processes")
    if not competition and not resume:
        raise typer.BadParameter("give a COMPETITION (or --resume RUN_DIR)")
    settings = {name: value for name, value in locals().items() if name not in ("competition", "overrides")}
    options = RunOptions(**{**settings, "track": tuple(track or ()), "hooks": tuple(hooks or ())})
    if is_launcher(options):
        from ..core.invocation import arguments

        raise SystemExit(launch_workers(competition, options, overrides, arguments()))
    outcome = run_training(competition, options, overrides)
    if isinstance(outcome, GroupOutcome):
        return _report_group(outcome)
    _report_run(outcome)


def _report_run(outcome: SingleOutcome) -> None:
    if outcome.interrupted and not outcome.saved:  # a new run stopped before its first epoch: removed
        from . import fail

        fail("interrupted before the first epoch finished: nothing was saved", 130, kind="interrupted")
    if outcome.interrupted:
        again = f" --nproc {outcome.world_size}" if outcome.world_size > 1 else ""
        print(
            f"interrupted after {outcome.result.epochs_run} finished epoch(s); "
            f"resume with: kaggle-kit train --resume {outcome.run_dir}{again}",
            file=sys.stderr,
        )
        raise SystemExit(130)
    print(f"run: {outcome.run_dir}")
    print(f"next: kaggle-kit predict {outcome.run_dir}")


def _report_group(outcome: GroupOutcome) -> None:
    from ..workflows.cross_validation import describe_cv

    group, result = outcome.group, outcome.result
    if outcome.interrupted:
        print(
            f"interrupted in fold {result.interrupted}: resume the group with: kaggle-kit train --resume {group.path}",
            file=sys.stderr,
        )
        raise SystemExit(130)
    if outcome.summary is None:
        done = [f for f in range(1, group.k + 1) if (group.fold_dir(f) / "best.pt").is_file()]
        print(f"trained folds {', '.join(map(str, result.trained))}; finished: {len(done)}/{group.k}")
        print(f"the OOF score comes when every fold has finished: kaggle-kit train --resume {group.path}")
        return
    for line in describe_cv(outcome.summary):
        print(line)
    print(f"group: {group.path} (cv.md, oof_predictions.npz)")
    print(f"next: kaggle-kit predict {group.path}")


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(with_recipe_flags(train))
