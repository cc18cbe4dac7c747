"""Every decision of a training request, for `kk.train` and `kaggle-kit train` alike.

`run_training` checks the request, launches `--nproc` workers, dispatches a fold group or a single run, chooses
pseudo-labels, trains, and after a single run calibrates and analyses. What it has to say while working (which
pseudo-labels, the epochs trained, the calibration) goes to `say(text, err=False)`, so a terminal and a notebook
see the same lines in the same order; the outcome it returns is what the caller reports last.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.errors import KitError
from .options import RunOptions, train_argv

Say = Callable[..., None]


def say_plainly(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


@dataclass
class SingleOutcome:
    """A single run trained (or stopped): its TrainResult, calibration and analysis folder."""

    result: Any
    calibration: dict[str, Any]
    analysis: Path | None
    world_size: int = 1

    @property
    def run_dir(self) -> Path:
        return Path(self.result.run_dir)

    @property
    def interrupted(self) -> bool:
        return bool(self.result.interrupted)

    @property
    def saved(self) -> bool:
        """False when a new run stopped before its first epoch: its folder was removed."""
        return self.run_dir.exists()


@dataclass
class GroupOutcome:
    """A fold group's folds trained (or skipped, or stopped), and its CV summary once every fold has finished."""

    group: Any  # records.group_folder.FoldGroup
    result: Any  # workflows.cross_validation.GroupResult
    summary: dict[str, Any] | None

    @property
    def interrupted(self) -> bool:
        return self.result.interrupted is not None


def check_request(competition: str | None, options: RunOptions, overrides: dict[str, Any]) -> None:
    """What cannot go together, refused before anything is read or launched."""
    from ..training.tracking import check_kinds

    if options.nproc < 1:
        raise KitError(f"--nproc {options.nproc}: give 1 or more processes")
    if not competition and not options.resume:
        raise KitError("give a COMPETITION (or --resume RUN_DIR)")
    check_kinds(list(options.track) or None)  # a wrong name fails before any training, on every rank
    if is_group_request(options):
        if options.pseudo_labels is not None or options.pseudo_threshold is not None:
            # a source trained on these labels has seen every fold's held-out images: its pseudo-labels would carry
            # them into the other folds' training and flatter the OOF score
            raise KitError(
                "--pseudo-labels is for single runs, not fold groups (its source saw the held-out folds' labels, "
                "so the OOF score would flatter): train the group without it, or a single run with it"
            )
        if options.track:
            raise KitError("--track does not log fold groups yet: drop --track (each fold's history.csv is kept)")
        return
    if options.fold is not None or options.gpus is not None or options.ray is not None:
        given = "--fold" if options.fold else "--gpus" if options.gpus else "--ray"
        raise KitError(f"{given} is for fold groups: add --folds K (or --resume GROUP)")
    if options.resume:
        given = [f"--{name.replace('_', '-')}" for name, value in overrides.items() if value is not None]
        named = (("--recipe", options.recipe), ("--out", options.out), ("--pseudo-labels", options.pseudo_labels))
        named += (("--pseudo-threshold", options.pseudo_threshold),)
        given += [flag for flag, value in named if value is not None]
        if given:
            raise KitError(
                f"--resume continues {options.resume} with the settings in its config.json, so {', '.join(given)} "
                f"would be ignored: drop {'it' if len(given) == 1 else 'them'} "
                f"(or start a new run with another --out)"
            )


def is_group_request(options: RunOptions) -> bool:
    """`folds=K`, or `resume` naming a fold group's folder."""
    from ..records.group_folder import is_group

    return options.folds is not None or bool(options.resume and is_group(options.resume))


def is_launcher(options: RunOptions) -> bool:
    """`nproc > 1` outside a worker: this process starts the workers and waits (torchrun's set WORLD_SIZE)."""
    return options.nproc > 1 and "WORLD_SIZE" not in os.environ


def launch_workers(competition: str | None, options: RunOptions, overrides: dict, argv: list[str] | None) -> int:
    """Run the request as `nproc` DDP workers of `kaggle-kit train`; the exit code they end with."""
    from ..core.launch import launch

    return launch(argv or train_argv(competition, options, overrides), options.nproc)


def run_training(
    competition: str | None, options: RunOptions, overrides: dict[str, Any], say: Say = say_plainly
) -> SingleOutcome | GroupOutcome:
    """Train in this process (a worker of `--nproc` included): a fold group, or a run then its calibration.
    Ranks other than 0 leave the process once training is done: rank 0 alone reports and writes."""
    from ..core import distributed, progress
    from ..core.launch import die_with_launcher
    from ..training.tracking import RunTracking, check_kinds

    if options.quiet:
        progress.enable(False)
    die_with_launcher()
    distributed.init_from_env()
    # read before shutdown(): afterwards every process would count as rank 0 of 1
    is_main, world_size = distributed.is_main(), distributed.world_size()
    check_request(competition, options, overrides)
    kinds = check_kinds(list(options.track))
    if is_group_request(options):
        return _train_group(competition, options, overrides, is_main, say)
    tracker = RunTracking(kinds) if kinds and is_main else None  # rank 0 alone logs
    try:
        result = _train_single(competition, options, overrides, tracker, say)
    except BaseException as error:
        if tracker:
            tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        distributed.shutdown()
    leave_unless_main(is_main)
    outcome = SingleOutcome(result, {}, None, world_size)
    if outcome.interrupted:
        if tracker and outcome.saved:
            tracker.finish("KILLED")
        return outcome
    if result.already_finished:  # the same resume again, after one that ended once it had written everything
        epochs = f"{result.epochs_run} epoch{'' if result.epochs_run == 1 else 's'}"
        say(f"{outcome.run_dir} already finished its {epochs}: nothing to resume", err=True)
        return outcome
    _after_training(outcome, options, say)
    if tracker:
        tracker.finish()  # after calibration and analysis, so their pictures are logged too
    return outcome


def _train_single(competition, options: RunOptions, overrides, tracker, say: Say):
    from .. import training
    from .hooks import hook_objects

    extra = {"hooks": hook_objects(options.hooks)} if options.hooks else {}
    if options.resume:
        return training.resume(options.resume, options.data_dir, competition, tracker=tracker, **extra)
    images = training_images(competition, options, overrides, say)
    return training.train(
        competition, options.data_dir, options.recipe, options.out, tracker=tracker, images=images, **extra, **overrides
    )


def training_images(competition, options: RunOptions, overrides, say: Say = say_plainly):
    """The labelled images and, with pseudo_labels, the test images that source labels confidently, chosen on rank 0
    and handed to the others: every rank must train on one set, and predictions on different devices may differ at
    the threshold's edge."""
    from ..core import distributed
    from ..data.training_images import TrainingImages
    from ..training.entry import check_request as check_recipe

    source, threshold = options.pseudo_labels, options.pseudo_threshold
    if source is None:
        if threshold is not None:
            raise KitError("--pseudo-threshold needs --pseudo-labels RUN_OR_GROUP (whose predictions it thresholds)")
        return TrainingImages()
    from ..workflows.pseudo_labelling import DEFAULT_THRESHOLD, check_threshold, select

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    check_threshold(threshold)
    _, _, requested = check_recipe(competition, options.recipe, overrides)  # a bad flag fails before predicting
    chosen = None
    if distributed.is_main():
        chosen = select(competition, options.data_dir, source, threshold, requested.device)
        counts = ", ".join(f"{name} {n}" for name, n in chosen.record()["per_class"].items())
        say(
            f"pseudo-labels: {len(chosen)} of {chosen.test_images} test images at calibrated probability >= "
            f"{chosen.threshold:g} from {source} ({counts})",
            err=True,
        )
    return TrainingImages(pseudo=distributed.broadcast_object(chosen))


def _after_training(outcome: SingleOutcome, options: RunOptions, say: Say) -> None:
    """The epochs trained, then the calibration predict will use, then (when asked) the error analysis."""
    from ..inference.analysis import analyze_finished_run
    from ..inference.calibration import calibrate_after_training
    from ..inference.scoring import calibrated_figure, calibration_notes
    from ..records.run_folder import display_epoch

    result, metric = outcome.result, _metric_of(outcome.run_dir)
    best = (
        "no validation split"
        if result.best_metric is None or result.best_metric != result.best_metric
        else f"best validation {_best_figure(result, metric)} (epoch {display_epoch(result.best_epoch)})"
    )
    say(f"trained {result.epochs_run} epoch{'' if result.epochs_run == 1 else 's'} in {result.seconds:.0f}s: {best}")
    calibration = calibrate_after_training(result, options.data_dir) or {}  # measured once, read by predict, score
    outcome.calibration = calibration
    if calibration.get("target", "label") != "label":  # a kind's fit (inference/target_predict), not a temperature
        from ..inference.target_predict import describe_target_fit

        for line in describe_target_fit(calibration, metric):
            say(line)
    if not calibration.get("validated"):
        return
    # the stored choice is what predict submits (a recipe's tta on/off included), so this figure is its score
    say(
        f"calibrated (what predict uses): best.pt, TTA {'on' if calibration['tta'] else 'off'} "
        f"({calibration['tta_source']}), temperature {calibration['temperature']:.3f}, "
        f"{calibrated_figure(metric, calibration)}"
    )
    for note in calibration_notes(calibration):
        say(f"note: {note}", err=True)
    if options.analyze:
        analysis = analyze_finished_run(result.run_dir, options.data_dir)
        if analysis:
            outcome.analysis = analysis.folder / "analysis.md"
            say(f"what it gets wrong: {outcome.analysis}")


def _best_figure(result, metric) -> str:
    """The best epoch's figure with its interval and n, as its epoch line printed it."""
    from ..competitions.bootstrap import describe_figure
    from ..records.run_folder import best_interval

    return describe_figure(metric, best_interval(result.history, result.best_epoch), result.best_metric)


def _metric_of(run_dir: Path):
    from ..competitions.registry import resolve
    from ..records.run_folder import RunDir

    return resolve(RunDir(run_dir).read_config().competition).metric


def _train_group(competition, options: RunOptions, overrides, is_main: bool, say: Say) -> GroupOutcome:
    """Every chosen fold trained (or resumed, or skipped when finished), then the OOF and CV."""
    from ..core import distributed
    from ..workflows import cross_validation

    gpus = gpu_list(options.gpus, options.nproc, say)
    if options.ray is not None and (gpus or options.nproc > 1):
        raise KitError("--ray places the folds on the Ray cluster's GPUs itself: drop --gpus and --nproc")
    if options.ray is not None:  # Ray missing or no cluster: said before the group folder is written
        from ..core.ray_jobs import connect

        connect(options.ray)
    if options.resume:
        _refuse_group_resume_settings(competition, options, overrides)
    try:
        if options.resume:
            group = cross_validation.FoldGroup(options.resume)
        else:
            cross_validation.parse_fold_list(options.fold, options.folds)  # a bad --fold stops before folds.json
            group, _ = cross_validation.plan_group(
                competition, options.data_dir, options.recipe, options.out, options.folds, **overrides
            )
        chosen = cross_validation.parse_fold_list(options.fold, group.k)
        if gpus or options.ray:
            result = cross_validation.train_folds_apart(group, chosen, options.data_dir, gpus=gpus, ray=options.ray)
        else:
            result = cross_validation.train_folds(group, chosen, options.data_dir)
    finally:
        distributed.shutdown()
    leave_unless_main(is_main)
    if result.interrupted is not None:
        return GroupOutcome(group, result, None)
    if result.skipped:
        say(f"folds {', '.join(map(str, result.skipped))} had finished already: skipped")
    summary = group.cv() if not result.trained else None  # nothing new: the stored OOF and CV stand
    return GroupOutcome(group, result, summary or cross_validation.finish_group(group, options.data_dir))


def _refuse_group_resume_settings(competition, options: RunOptions, overrides) -> None:
    named = (("COMPETITION", competition), ("--recipe", options.recipe), ("--out", options.out))
    given = [name for name, value in named if value]
    given += ["--folds"] if options.folds is not None else []
    given += [f"--{name.replace('_', '-')}" for name, value in overrides.items() if value is not None]
    if given:
        raise KitError(
            f"--resume {options.resume} continues the fold group with its folds.json settings, so {', '.join(given)} "
            "would be ignored: drop them (or start a new group with another --out)"
        )


def gpu_list(gpus: str | None, nproc: int, say: Say = say_plainly) -> list[str] | None:
    if gpus is None:
        return None
    found = [g.strip() for g in gpus.split(",") if g.strip()]
    if not found:
        raise KitError(f"--gpus {gpus!r}: give GPU ids separated by commas, e.g. --gpus 0,1")
    if nproc > 1:
        raise KitError("--gpus runs one fold per GPU, --nproc one fold on several: choose one of them")
    import torch

    if not torch.cuda.is_available():  # the ids only set CUDA_VISIBLE_DEVICES: the folds still run, on the CPU
        say(
            f"warning: no CUDA GPU is visible here: --gpus {gpus} runs {len(found)} folds side by side on the CPU",
            err=True,
        )
    return found


def leave_unless_main(is_main: bool) -> None:
    """Rank 0 alone reports, calibrates and writes to the run folder. The others leave without interpreter
    finalisation: gloo's worker threads can abort the process while Python tears down (seen as SIGABRT
    "terminate called without an active exception" after a finished run)."""
    if not is_main:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def train(competition: str | None = None, **settings: Any):
    """`kk.train("dog_breed", arch="resnet34", epochs=5, data_dir=...)`: every recipe field and every run option of
    `kaggle-kit train` is a keyword named as its flag (`batch_size`, `folds`, `nproc`, `resume`, `hooks`, `track`,
    `pseudo_labels`, ...). Returns a `Run`, or a `FoldGroup` with `folds=K` (or `resume=GROUP`). A stop (the
    notebook's interrupt) saves the run and raises KeyboardInterrupt saying how to resume."""
    from .options import split_settings
    from .results import FoldGroup, Run, open_result

    options, overrides = split_settings(settings)
    check_request(competition, options, overrides)
    if is_launcher(options):
        options = _with_out(competition, options, overrides)
        code = launch_workers(competition, options, overrides, None)
        if code:
            raise KitError(
                f"training in {options.nproc} processes ended with exit code {code}: the lines above say why"
            )
        return open_result(options.resume or options.out)
    outcome = run_training(competition, options, overrides)
    if isinstance(outcome, GroupOutcome):
        if outcome.interrupted:
            where = f"stopped in fold {outcome.result.interrupted}"
            raise KeyboardInterrupt(f"{where}: resume with kk.train(resume={str(outcome.group.path)!r})")
        return FoldGroup(outcome.group.path)
    if outcome.interrupted:
        if not outcome.saved:
            raise KeyboardInterrupt("stopped before the first epoch finished: nothing was saved")
        raise KeyboardInterrupt(
            f"stopped after {outcome.result.epochs_run} finished epoch(s): "
            f"resume with kk.train(resume={str(outcome.run_dir)!r})"
        )
    return Run(outcome.run_dir)


def _with_out(competition: str | None, options: RunOptions, overrides: dict[str, Any]) -> RunOptions:
    """The request with its folder named here: the workers make it, and this process returns it."""
    import dataclasses

    from ..records.run_folder import DEFAULT_RUNS_DIR, new_run_path
    from ..training.entry import check_request as check_recipe

    if options.resume or options.out:
        return options
    comp, _, requested = check_recipe(competition, options.recipe, overrides)
    path = new_run_path(DEFAULT_RUNS_DIR, comp.name, requested.arch, requested.name)
    if options.folds is not None:
        path = path.with_name(f"{path.name}-{options.folds}fold")  # as cross_validation names a new group
    return dataclasses.replace(options, out=path)


def _train_signature():
    """`train(competition=None, *, data_dir=None, ..., arch=None, lr=None, ...)`: the keywords spelled out, so
    `help(kk.train)` and a notebook's completion list every option and recipe field."""
    import inspect

    from .options import OPTION_NAMES, RECIPE_NAMES

    defaults = RunOptions()
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("competition", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    params += [inspect.Parameter(name, keyword, default=getattr(defaults, name)) for name in OPTION_NAMES]
    params += [inspect.Parameter(name, keyword, default=None) for name in RECIPE_NAMES]
    return inspect.Signature(params)


train.__signature__ = _train_signature()
