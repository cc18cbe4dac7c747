"""`kaggle-kit train`: every Recipe field is a flag (`--lr`, `--batch-size`, `--freeze/--no-freeze`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ..config.flags import with_recipe_flags
from ..core.errors import KitError


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
    analyze: bool = typer.Option(
        True, "--analyze/--no-analyze", help="write the error-analysis pictures (RUN/analysis/analysis.md) at the end"
    ),
    track: Optional[list[str]] = typer.Option(
        None,
        "--track",
        metavar="mlflow|tensorboard",
        help="log the run to "
        "MLflow ($MLFLOW_TRACKING_URI, else runs/mlflow.db) or TensorBoard "
        "(RUN/tensorboard); repeatable",
    ),
    pseudo_labels: Optional[Path] = typer.Option(
        None,
        metavar="RUN_OR_GROUP",
        help="also train on the test images this run or fold group predicts confidently, labelled with its prediction",
    ),
    pseudo_threshold: Optional[float] = typer.Option(
        None, help="calibrated probability a test image needs to be pseudo-labelled, in (0, 1] (default 0.9)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress lines (they go to stderr, on by default)"),
    **overrides,
) -> None:
    """Train a model; every recipe setting can be overridden by its flag."""
    from .. import training
    from ..core import distributed, progress

    progress.enable(progress.enabled() and not quiet)

    if nproc < 1:
        raise typer.BadParameter(f"--nproc {nproc}: give 1 or more processes")
    # a worker of torchrun (or of `launch`) has WORLD_SIZE set before its process group exists: it trains
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from ..core.invocation import arguments
        from ..core.launch import launch

        raise SystemExit(launch(arguments(), nproc))
    from ..core.launch import die_with_launcher

    die_with_launcher()
    distributed.init_from_env()
    # read before shutdown(): afterwards every process would count as rank 0 of 1
    is_main, world_size = distributed.is_main(), distributed.world_size()
    from ..training.tracking import RunTracking, check_kinds

    kinds = check_kinds(track)  # a wrong name fails before any training, on every rank
    tracker = RunTracking(kinds) if kinds and is_main else None  # rank 0 alone logs
    from ..records.group_folder import is_group

    if folds is not None or (resume and is_group(resume)):
        if pseudo_labels is not None or pseudo_threshold is not None:
            # a source trained on these labels has seen every fold's held-out images: its pseudo-labels would carry
            # them into the other folds' training and flatter the OOF score
            raise KitError(
                "--pseudo-labels is for single runs, not fold groups (its source saw the held-out folds' labels, "
                "so the OOF score would flatter): train the group without it, or a single run with it"
            )
        if kinds:
            raise KitError("--track does not log fold groups yet: drop --track (each fold's history.csv is kept)")
        gpu_list = _gpu_list(gpus, nproc)
        return _train_group(competition, data_dir, recipe, out, resume, folds, fold, gpu_list, overrides, is_main)
    if fold is not None or gpus is not None:
        raise KitError(f"{'--fold' if fold else '--gpus'} is for fold groups: add --folds K (or --resume GROUP)")
    try:
        if resume:
            given = [f"--{name.replace('_', '-')}" for name, value in overrides.items() if value is not None]
            named = (("--recipe", recipe), ("--out", out), ("--pseudo-labels", pseudo_labels))
            given += [flag for flag, value in named + (("--pseudo-threshold", pseudo_threshold),) if value is not None]
            if given:
                raise KitError(
                    f"--resume continues {resume} with the settings in its config.json, so {', '.join(given)} "
                    f"would be ignored: drop {'it' if len(given) == 1 else 'them'} "
                    f"(or start a new run with another --out)"
                )
            result = training.resume(resume, data_dir, competition, tracker=tracker)
        else:
            if not competition:
                raise typer.BadParameter("give a COMPETITION (or --resume RUN_DIR)")
            images = _training_images(competition, data_dir, recipe, pseudo_labels, pseudo_threshold, overrides)
            result = training.train(competition, data_dir, recipe, out, tracker=tracker, images=images, **overrides)
    except BaseException as error:
        if tracker:
            tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        distributed.shutdown()
    _leave_unless_main(is_main)
    from ..competitions.registry import resolve
    from ..records.run_folder import RunDir, display_epoch

    if result.interrupted and not result.run_dir.exists():  # a new run stopped before its first epoch: removed
        from . import fail

        fail("interrupted before the first epoch finished: nothing was saved", 130, kind="interrupted")
    config = RunDir(result.run_dir).read_config()
    metric = resolve(config.competition).metric
    if result.interrupted:
        if tracker:
            tracker.finish("KILLED")
        again = f" --nproc {world_size}" if world_size > 1 else ""
        print(
            f"interrupted after {result.epochs_run} finished epoch(s); "
            f"resume with: kaggle-kit train --resume {result.run_dir}{again}",
            file=sys.stderr,
        )
        raise SystemExit(130)
    best = (
        "no validation split"
        if result.best_metric is None or result.best_metric != result.best_metric
        else (f"best validation {metric.describe(result.best_metric)} at epoch {display_epoch(result.best_epoch)}")
    )
    print(f"trained {result.epochs_run} epoch{'' if result.epochs_run == 1 else 's'} in {result.seconds:.0f}s: {best}")
    from ..inference.calibration import calibrate_after_training
    from ..inference.scoring import calibrated_figure, calibration_notes

    calibration = calibrate_after_training(result, data_dir) or {}  # measured once, read by predict and score
    if calibration.get("validated"):
        # the stored choice is what predict submits (a recipe's tta on/off included), so this figure is its score
        print(
            f"calibrated (what predict uses): best.pt, TTA {'on' if calibration['tta'] else 'off'} "
            f"({calibration['tta_source']}), temperature {calibration['temperature']:.3f}, "
            f"{calibrated_figure(metric, calibration)}"
        )
        for note in calibration_notes(calibration):
            print(f"note: {note}", file=sys.stderr)
    if analyze and calibration.get("validated"):
        from ..inference.analysis import analyze_finished_run

        analysis = analyze_finished_run(result.run_dir, data_dir)
        if analysis:
            print(f"what it gets wrong: {analysis.folder / 'analysis.md'}")
    if tracker:
        tracker.finish()  # after calibration and analysis, so their pictures are logged too
    print(f"run: {result.run_dir}")
    print(f"next: kaggle-kit predict {result.run_dir}")


def _training_images(competition, data_dir, recipe, source, threshold, overrides):
    """The labelled images and, with --pseudo-labels, the test images `source` labels confidently, chosen on rank 0
    and handed to the others: every rank must train on one set, and predictions on different devices may differ at
    the threshold's edge."""
    from ..core import distributed
    from ..data.training_images import TrainingImages
    from ..training.entry import check_request

    if source is None:
        if threshold is not None:
            raise KitError("--pseudo-threshold needs --pseudo-labels RUN_OR_GROUP (whose predictions it thresholds)")
        return TrainingImages()
    from ..workflows.pseudo_labelling import DEFAULT_THRESHOLD, check_threshold, select

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    check_threshold(threshold)
    _, _, requested = check_request(competition, recipe, overrides)  # a bad flag fails before the test set is predicted
    chosen = None
    if distributed.is_main():
        chosen = select(competition, data_dir, source, threshold, requested.device)
        counts = ", ".join(f"{name} {n}" for name, n in chosen.record()["per_class"].items())
        print(
            f"pseudo-labels: {len(chosen)} of {chosen.test_images} test images at calibrated probability >= "
            f"{chosen.threshold:g} from {source} ({counts})",
            file=sys.stderr,
        )
    return TrainingImages(pseudo=distributed.broadcast_object(chosen))


def _gpu_list(gpus: str | None, nproc: int) -> list[str] | None:
    if gpus is None:
        return None
    found = [g.strip() for g in gpus.split(",") if g.strip()]
    if not found:
        raise KitError(f"--gpus {gpus!r}: give GPU ids separated by commas, e.g. --gpus 0,1")
    if nproc > 1:
        raise KitError("--gpus runs one fold per GPU, --nproc one fold on several: choose one of them")
    import torch

    if not torch.cuda.is_available():  # the ids only set CUDA_VISIBLE_DEVICES: the folds still run, on the CPU
        print(
            f"warning: no CUDA GPU is visible here: --gpus {gpus} runs {len(found)} folds side by side on the CPU",
            file=sys.stderr,
        )
    return found


def _train_group(competition, data_dir, recipe, out, resume, k, fold, gpus, overrides, is_main) -> None:
    """`train --folds K`: every chosen fold trained (or resumed, or skipped when finished), then the OOF and CV."""
    from ..core import distributed
    from ..workflows import cross_validation

    if resume:
        given = [name for name, value in (("COMPETITION", competition), ("--recipe", recipe), ("--out", out)) if value]
        given += ["--folds"] if k is not None else []
        given += [f"--{name.replace('_', '-')}" for name, value in overrides.items() if value is not None]
        if given:
            raise KitError(
                f"--resume {resume} continues the fold group with its folds.json settings, so {', '.join(given)} "
                "would be ignored: drop them (or start a new group with another --out)"
            )
    try:
        if resume:
            group, data_dir = cross_validation.FoldGroup(resume), data_dir
        else:
            if not competition:
                raise typer.BadParameter("give a COMPETITION with --folds")
            cross_validation.parse_fold_list(fold, k)  # a bad --fold stops before folds.json is written
            group, _ = cross_validation.plan_group(competition, data_dir, recipe, out, k, **overrides)
        chosen = cross_validation.parse_fold_list(fold, group.k)
        if gpus:
            result = cross_validation.train_folds_on_gpus(group, chosen, gpus, data_dir)
        else:
            result = cross_validation.train_folds(group, chosen, data_dir)
    finally:
        distributed.shutdown()
    _leave_unless_main(is_main)
    if result.interrupted is not None:
        print(
            f"interrupted in fold {result.interrupted}: resume the group with: kaggle-kit train --resume {group.path}",
            file=sys.stderr,
        )
        raise SystemExit(130)
    if result.skipped:
        print(f"folds {', '.join(map(str, result.skipped))} had finished already: skipped")
    summary = group.cv() if not result.trained else None  # nothing new: the stored OOF and CV stand
    summary = summary or cross_validation.finish_group(group, data_dir)
    if summary is None:
        done = [f for f in range(1, group.k + 1) if (group.fold_dir(f) / "best.pt").is_file()]
        print(f"trained folds {', '.join(map(str, result.trained))}; finished: {len(done)}/{group.k}")
        print(f"the OOF score comes when every fold has finished: kaggle-kit train --resume {group.path}")
        return
    for line in cross_validation.describe_cv(summary):
        print(line)
    print(f"group: {group.path} (cv.md, oof_predictions.npz)")
    print(f"next: kaggle-kit predict {group.path}")


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(with_recipe_flags(train))


def _leave_unless_main(is_main: bool) -> None:
    """Rank 0 alone reports, calibrates and writes to the run folder. The others leave without interpreter
    finalisation: gloo's worker threads can abort the process while Python tears down (seen as SIGABRT
    "terminate called without an active exception" after a finished run)."""
    if not is_main:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
