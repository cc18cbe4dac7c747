"""`fit`: one training loop for every competition, readable top to bottom.

    prepare (data, model, optimizer; last.pt on resume) -> for each epoch:
    hooks before -> train one epoch (AMP, channels_last, EMA, grad clip) -> validate -> hooks after

Every variation of the loop is a hook (train/hooks/), listed below in the order it runs at each point.
Resume: each epoch's data order and augmentation derive from (seed, epoch) alone and `last.pt` holds the rest
(state.py), so a run killed at any moment and resumed ends where an uninterrupted one would.
Distributed (torchrun / `--nproc`): the model is wrapped in DDP, training data is sharded, validation predictions
are gathered so every image counts exactly once, and only rank 0 writes the run folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..competitions.registry import Competition
from ..competitions.resolution import Resolution
from ..config.recipe import Recipe
from ..core import distributed, progress
from ..data.layout import Layout
from ..data.training_images import TrainingImages
from ..records.run_folder import RunDir
from .epoch import run_epoch
from .hooks.averaging import WeightAveraging
from .hooks.base import Hook
from .hooks.callback import OnEpoch
from .hooks.checkpoints import Checkpoints
from .hooks.early_stopping import EarlyStopping
from .hooks.history import History
from .hooks.interrupts import HeldInterrupt, Interrupts
from .hooks.mixing import MixSwitch
from .hooks.out_of_memory import OutOfMemory
from .hooks.unfreeze import Unfreeze
from .setup import prepare, say_notes
from .state import TrainState


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_epoch: int | None
    best_metric: float | None
    final_metric: float | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


def fit(
    comp: Competition,
    layout: Layout,
    recipe: Recipe,
    run: RunDir,
    resume: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resolution: Resolution | None = None,
    images: TrainingImages | None = None,
    extra_hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Train `recipe` on `layout` into `run`; with `resume`, continue from the run's last checkpoint.
    `resolution`: how `recipe` was derived from the named one (recorded in config.json, said as notes).
    `images`: which images train and validate, where the command chose them (a fold's validation images,
    pseudo-labelled test images); a resumed run reads its own from the run folder.
    `extra_hooks`: the caller's own (tune's pruning), run after early stopping and before the writers."""
    started = time.perf_counter()
    setup, state = prepare(comp, layout, recipe, run, resume, resolution, images)
    hooks = [  # the order they run in at every point; a hook that sets state.stop comes before the writers
        Unfreeze(recipe, setup.device),
        MixSwitch(setup.mix, recipe.mix_off_epoch),
        EarlyStopping(recipe.early_stop_patience),
        *extra_hooks,  # may set state.stop, as early stopping does
        WeightAveraging(recipe, setup),  # before the writers: last.pt holds this epoch's average
        Checkpoints(run, recipe.epochs),
        History(run, comp, recipe.epochs),
        OnEpoch(on_epoch),
        Interrupts(hold=setup.head_only),  # last of the epoch's hooks: a held stop is raised once all ran
        OutOfMemory(recipe, setup.device, run),
    ]
    say_notes(recipe, resolution)
    for hook in hooks:
        hook.before_fit(state)
    total_steps = setup.steps_per_epoch * (recipe.epochs - state.epoch)
    with progress.bar(total_steps if distributed.is_main() else None, f"training {run.name}") as bar:
        try:
            while state.epoch < recipe.epochs and state.stop is None:
                for hook in hooks:
                    hook.before_epoch(state)
                outcome = run_epoch(setup, state, bar)
                for hook in hooks:
                    hook.after_epoch(state, outcome)
                state.epoch += 1
        except KeyboardInterrupt as stop:
            state.interrupted = True
            for hook in hooks:
                hook.on_interrupt(state, at_epoch_end=isinstance(stop, HeldInterrupt))
        except Exception as error:
            handled = [hook.on_error(state, error) for hook in hooks]  # every hook hears of it, not up to the first
            if not any(handled):
                raise
    _after_fit(hooks, state)
    setup.data.train_cache.release()  # a joined (pseudo-labelled) cache may now be cleared by another run
    if not state.interrupted:
        # an interrupt reaches each rank at a different step, where a collective would never be matched: the
        # interrupted ranks leave at once (rank 0 wrote the last finished epoch's checkpoint already)
        distributed.barrier()
    return _result(run, state, time.perf_counter() - started)


def _after_fit(hooks, state: TrainState) -> None:
    for hook in hooks:
        try:
            hook.after_fit(state)
        except KeyboardInterrupt:  # a second Ctrl-C: the writes are atomic, and the run must still say how to resume
            state.interrupted = True


def _result(run: RunDir, state: TrainState, seconds: float) -> TrainResult:
    history = state.history
    return TrainResult(
        run_dir=run.path,
        epochs_run=len(history),
        best_epoch=state.best_epoch,
        best_metric=state.best_metric,
        final_metric=history[-1]["val_metric"] if history else None,
        seconds=seconds,
        history=history,
        interrupted=state.interrupted,
    )
