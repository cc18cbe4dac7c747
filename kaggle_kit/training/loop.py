"""`fit`: one training loop for every competition, readable top to bottom.

    prepare (data, model, optimizer; last.pt on resume) -> for each epoch:
    hooks before -> train one epoch (hooks before and after each batch) -> validate -> hooks after

Every variation of the loop is a hook (training/hooks/, `builtin_hooks`), and a user adds their own the same way
(docs/hooks.md): at every event the hooks run sorted by `order`, equal orders in the order given.
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
from .hooks.accumulation import Accumulation
from .hooks.averaging import WeightAveraging
from .hooks.base import Hook
from .hooks.callback import OnEpoch
from .hooks.checkpoints import Checkpoints
from .hooks.early_stopping import EarlyStopping
from .hooks.ema import EmaUpdate
from .hooks.history import History
from .hooks.interrupts import HeldInterrupt, Interrupts
from .hooks.mixing import MixBatches
from .hooks.out_of_memory import OutOfMemory
from .hooks.unfreeze import Unfreeze
from .setup import Setup, prepare, say_notes
from .state import TrainState, hook_name, hook_states, restore_hook_states


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
    already_finished: bool = False  # a resume found every epoch, the calibration and any analysis done: nothing ran


def fit(
    comp: Competition,
    layout: Layout,
    recipe: Recipe,
    run: RunDir,
    resume: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resolution: Resolution | None = None,
    images: TrainingImages | None = None,
    hooks: Sequence[Hook] = (),
    tracker: Hook | None = None,
) -> TrainResult:
    """Train `recipe` on `layout` into `run`; with `resume`, continue from the run's last checkpoint.
    `resolution`: how `recipe` was derived from the named one (recorded in config.json, said as notes).
    `images`: which images train and validate, where the command chose them (a fold's validation images,
    pseudo-labelled test images); a resumed run reads its own from the run folder.
    `hooks`: the caller's own (docs/hooks.md), run among the built-ins by their `order`; their `module:Class`
    names go into config.json and their state into last.pt. `tracker`: the run's trackers (tracking.RunTracking)."""
    started = time.perf_counter()
    setup, state = prepare(comp, layout, recipe, run, resume, resolution, images)
    state.hooks = all_hooks = ordered([*builtin_hooks(setup, on_epoch, tracker), *hooks])
    restore_hook_states(all_hooks, state.saved_hooks)
    hook_states(all_hooks)  # a state last.pt could not load is refused now, not after the first epoch
    if hooks and not resume and distributed.is_main():
        # a hook tied to this process (tune's Optuna trial) says recorded = False: a resume cannot make it again
        run.update_config(hooks=[hook_name(hook) for hook in hooks if getattr(hook, "recorded", True)])
    say_notes(recipe, resolution)
    for hook in all_hooks:
        hook.before_fit(state)
    total_steps = setup.steps_per_epoch * (recipe.epochs - state.epoch)
    total = total_steps if distributed.is_main() else None
    with progress.bar(total, f"training {run.name}", period=setup.steps_per_epoch) as bar:
        _epochs(setup, state, all_hooks, bar)
    _after_fit(all_hooks, state)
    setup.data.train_cache.release()  # a joined (pseudo-labelled) cache may now be cleared by another run
    if not state.interrupted:
        # an interrupt reaches each rank at a different step, where a collective would never be matched: the
        # interrupted ranks leave at once (rank 0 wrote the last finished epoch's checkpoint already)
        distributed.barrier()
    return _result(run, state, time.perf_counter() - started)


def builtin_hooks(setup: Setup, on_epoch: Callable[[dict[str, Any]], None] | None, tracker: Hook | None) -> list[Hook]:
    """Every variation of the loop the recipe asks for, in the order they run among hooks of equal `order`."""
    recipe, run = setup.recipe, setup.run
    mix = MixBatches.of(recipe, len(setup.layout.classes))
    return [
        Unfreeze(recipe, setup.device),
        *([mix] if mix else []),
        *([Accumulation(recipe.accum_steps, recipe.batch_size)] if recipe.accum_steps > 1 else []),
        *([EmaUpdate()] if recipe.ema else []),
        EarlyStopping(recipe.early_stop_patience),  # a hook that sets state.stop comes before the writers
        WeightAveraging(recipe, setup),  # before the writers: last.pt holds this epoch's average
        Checkpoints(run, recipe.epochs),
        History(run, setup.comp, recipe.epochs),
        OnEpoch(on_epoch),
        *([tracker] if tracker else []),
        Interrupts(hold=setup.head_only),  # last of the epoch's hooks: a held stop is raised once all ran
        OutOfMemory(recipe, setup.device, run),
    ]


def ordered(hooks: list[Hook]) -> list[Hook]:
    """By `order`; equal orders keep the order given (the built-ins first)."""
    return sorted(hooks, key=lambda hook: hook.order)


def _epochs(setup: Setup, state: TrainState, hooks: list[Hook], bar) -> None:
    try:
        while state.epoch < setup.recipe.epochs and state.stop is None:
            for hook in hooks:
                hook.before_epoch(state)
            outcome = run_epoch(setup, state, bar, hooks)
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
