"""The library's entry points: `train` makes a run folder and fits into it, `resume` continues one."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..competitions.registry import Competition
from ..competitions.resolution import Resolution, explicit_settings, resolve_recipe
from ..config.recipe import Recipe
from ..core import distributed
from ..core.errors import KitError
from ..core.locks import SoleWriter
from ..data.layout import Layout
from ..data.training_images import TrainingImages
from ..records.run_config import CONFIG, read_config_dict
from ..records.run_folder import DEFAULT_RUNS_DIR, HISTORY, RunDir
from .hooks.base import Hook
from .hooks.loading import hooks_for_resume
from .loop import TrainResult, fit
from .setup import check_normalization


def train(
    competition: str | Competition,
    data_dir: Path | str | None = None,
    recipe: str | Recipe | None = None,
    out: Path | str | None = None,
    runs_root: Path | str = DEFAULT_RUNS_DIR,
    tracker=None,
    images: TrainingImages | None = None,
    hooks: Sequence[Hook] = (),
    **overrides: Any,
) -> TrainResult:
    """`train("dog_breed", arch="resnet34")`: resolve, read the data, train, and return the result.
    `hooks`: the user's own (`Hook` subclasses, docs/hooks.md); config.json records their `module:Class` names
    so that `resume` can create them again.
    `images`: which images train and validate, where the caller decided it: a fold's validation images (the
    recipe's val_fraction should say their share), confident test predictions to train on as well (chosen by
    `workflows.pseudo_labelling.select`). None: the labelled images, split by the recipe's seed and fraction.
    `hooks`: training hooks of the caller's own (`loop.fit`'s), such as tune's pruning."""
    from ..records.run_folder import new_run_path

    images = images or TrainingImages()
    comp, layout, resolution = resolve_training(competition, data_dir, recipe, overrides, images.added)
    resolved = resolution.recipe
    path = Path(out) if out else new_run_path(Path(runs_root), comp.name, resolved.arch, resolved.name)
    existed = path.exists()
    claim = _claim(path)  # before the check, so two trainings into one folder cannot both pass it
    if out and (path / "config.json").exists():
        claim.release()
        raise KitError(
            f"{path} already holds a run; resume it with `kaggle-kit train --resume {path}` or choose another --out"
        )
    if distributed.is_distributed():
        path = Path(distributed.broadcast_object(str(path)))
    run, created = RunDir(path), not existed

    def remove_if_nothing_to_resume() -> None:
        # failed or stopped before finishing an epoch (bad weights, out of memory, Ctrl-C): no half-made folder is
        # left for `runs` to list or for the next `--out` to trip over. history.csv, written after every epoch,
        # says whether one finished (a head-only run's last.pt may not be due yet)
        if created and distributed.is_main() and not run.file(HISTORY).is_file():
            shutil.rmtree(path, ignore_errors=True)

    if tracker is not None:  # tracking.RunTracking: told the run folder, then a hook fed every epoch's row
        tracker.attach(path)
    try:
        result = fit(comp, layout, resolved, run, resolution=resolution, images=images, hooks=hooks, tracker=tracker)
    except BaseException:
        remove_if_nothing_to_resume()
        raise
    finally:
        claim.release()
    if result.interrupted:
        remove_if_nothing_to_resume()
    return result


def _claim(path: Path) -> SoleWriter | SimpleNamespace:
    """The run folder's writer lock, on the main rank (the other ranks of a distributed run share its folder)."""
    if not distributed.is_main():
        return SimpleNamespace(release=lambda: None)
    return SoleWriter(path, f"the run folder {path}")


def resolve_training(
    competition: str | Competition,
    data_dir: Path | str | None,
    recipe: str | Recipe | None,
    overrides: dict[str, Any],
    added_images: int = 0,
) -> tuple[Competition, Layout, Resolution]:
    """The competition, its data and the recipe fitted to it, exactly as `train` gets them (`lr-find` too).
    `added_images`: training images beyond the labelled ones (pseudo-labels), counted when sizing the batch."""
    from ..data.layout import open_layout

    comp, base, requested = check_request(competition, recipe, overrides)
    layout = open_layout(comp, data_dir)
    check_metric_fits(comp, layout.classes)
    n_train = round(len(layout.train.ids) * (1 if requested.full_train else 1 - requested.val_fraction))
    n_train += added_images
    n_train //= distributed.world_size()  # the batch is per process: each rank steps through its own share
    return comp, layout, resolve_recipe(comp, requested, explicit_settings(comp, base, overrides), n_train)


def check_metric_fits(comp: Competition, classes: list[str]) -> None:
    """The declared metric must fit the classes the data has: validation, the best epoch and calibration follow it,
    and QWK over names sorted as text (a declaration whose classes come from the labels) would rank nonsense."""
    misfit = comp.metric_misfit(comp.metric, classes)
    if misfit:
        raise KitError(
            f"{comp.source}: metric {comp.metric.key}: {misfit}; declare one that fits "
            f'({", ".join(comp.fitting_metrics(classes))}), or list the grades in order with class_source = "declared"'
        )


def check_request(
    competition: str | Competition, recipe: str | Recipe | None, overrides: dict[str, Any]
) -> tuple[Competition, Recipe, Recipe]:
    """(competition, named recipe, recipe with the user's settings), checked before any data is read: a bad flag
    fails in a second, not after minutes of decoding or predicting."""
    from ..competitions.registry import resolve
    from ..models import factory as models

    comp = resolve(competition) if isinstance(competition, str) else competition
    base = recipe if isinstance(recipe, Recipe) else comp.recipe(recipe)
    requested = base.replace(**{k: v for k, v in overrides.items() if v is not None}).validate()
    comp.augmentation(requested.aug)  # unknown augmentation names
    check_normalization(comp, requested)
    models.resolve_arch(requested.arch)  # unknown architecture names
    return comp, base, requested


def resume(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    competition: str | None = None,
    tracker=None,
    hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Continue a run from its last checkpoint with exactly the settings it was started with. `competition`, when
    given, must be the run's own (a command line naming one is checked, not obeyed). The user hooks config.json
    names are created again from their `module:Class` names, except those of a class `hooks` holds an instance
    of (a hook that takes arguments, or one defined in a notebook); each gets its state back from last.pt."""
    from ..competitions.registry import resolve
    from ..data.layout import open_layout

    run = RunDir(run_dir)
    config = run.read_config()
    comp = resolve(config.competition)
    named = resolve(competition) if competition is not None else comp
    if named.name != comp.name:
        raise KitError(
            f"{run.path} is a {comp.name} run, not {named.name}: resume it with `kaggle-kit train --resume {run.path}`"
        )
    recipe = config.recipe
    hooks = hooks_for_resume(list(read_config_dict(run.path).get("hooks") or []), list(hooks), str(run.file(CONFIG)))
    layout = open_layout(comp, data_dir or config.data_dir)
    if layout.fingerprint() != config.fingerprint:
        raise KitError(
            f"the data in {layout.root} differs from the data {run.path} was trained on "
            f"(fingerprint {layout.fingerprint()} vs {config.fingerprint}); pass the original --data-dir"
        )
    history = run.history()
    if len(history) >= recipe.epochs and run.has_checkpoint("last"):
        if not run.has_checkpoint("best"):
            raise KitError(f"{run.path} already finished all {recipe.epochs} epochs; nothing to resume")
        # stopped while calibrating or analysing: the caller does those again. Or stopped once all was written
        # (a resume killed before it could exit): the run is whole, and running the same command again says so
        return _finished(run, history, already_finished=after_training_done(run, config))
    if len(history) and not run.has_checkpoint("last"):
        print(
            f"warning: {run.path} has no last.pt (the run was killed before its first checkpoint): training starts "
            f"again from epoch 1 and replaces the {len(history)} epoch(s) in history.csv",
            file=sys.stderr,
        )
    if tracker is not None:
        tracker.attach(run.path)
    claim = _claim(run.path)
    try:
        return fit(comp, layout, recipe, run, resume=True, hooks=hooks, tracker=tracker)
    finally:
        claim.release()


def after_training_done(run: RunDir, config) -> bool:
    """Whether what follows the epochs finished too: the calibration, and the analysis when one was started (a
    run stopped before them is resumed to do them, by `train --resume` and `experiment` alike)."""
    analysis = run.path / "analysis"
    started = analysis.is_dir()
    return config.calibration_of("best") is not None and (not started or (analysis / "analysis.md").is_file())


def _finished(run, history, already_finished: bool) -> TrainResult:
    """The result of a run whose epochs all finished, read back from its folder (best.pt says the best epoch)."""
    best = run.load_checkpoint("best")
    return TrainResult(
        run_dir=run.path,
        epochs_run=len(history),
        best_epoch=int(best["epoch"]),
        best_metric=best.get("metric"),
        final_metric=float(history["val_metric"].iloc[-1]),
        seconds=0.0,
        history=history.to_dict("records"),
        already_finished=already_finished,
    )
