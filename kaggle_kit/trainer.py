"""`fit`: one training loop for every competition, readable top to bottom.

    prepare data (cache, split) -> build model -> optimizer + per-batch schedule -> for each epoch:
    train (AMP, channels_last, EMA, grad clip) -> validate (competition metric) -> checkpoints ->
    history + curves

Resume: `last.pt` holds model, optimizer, scheduler, grad scaler, EMA, RNG states, epoch and history,
written atomically at the end of every epoch. Each epoch's data order and augmentation derive from
(seed, epoch) alone, so a run killed at any moment and resumed ends where an uninterrupted one would.
Distributed (torchrun / `--nproc`): the model is wrapped in DDP, training data is sharded by a
DistributedSampler, validation predictions are gathered so every image counts exactly once, and
only rank 0 writes the run folder.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed, progress
from .batches import Batches, Data, prepare_data
from .competition import Competition
from .data import epoch_seed, seed_everything
from .device import autocast_dtype, resolve_device, set_backend_flags, to_device, use_channels_last
from .errors import KitError, out_of_memory
from .layout import Layout
from .recipe import Recipe
from .resolve import Resolution, augmentation_for, explicit_settings, resolve_recipe
from .run import DEFAULT_RUNS_DIR, HISTORY, RunDir, display_epoch, git_commit, versions
from .schedules import build_scheduler


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


# --------------------------------------------------------------------------------------- setup


def check_normalization(comp: Competition, recipe: Recipe) -> None:
    if recipe.normalize == "dataset" and comp.dataset_mean_std is None:
        raise KitError(f"--normalize dataset: {comp.name} declares no dataset mean/std; use --normalize model")


def input_normalization(comp: Competition, recipe: Recipe, model: torch.nn.Module):
    """(mean, std) the run normalises its images with: the model's (its weights expect them) or the
    competition's declared dataset statistics."""
    from . import models

    if recipe.normalize == "model":
        return models.normalization(model)
    check_normalization(comp, recipe)
    mean, std = comp.dataset_mean_std
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def run_config(comp: Competition, layout: Layout, recipe: Recipe, normalization, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "competition": comp.name,
        "slug": comp.slug,
        "metric": comp.metric.name,
        "higher_is_better": comp.metric.higher_is_better,
        "recipe": recipe.to_dict(),
        "augment": dataclasses.asdict(augmentation_for(comp, recipe)),
        "classes": layout.classes,
        "data_dir": str(layout.root.resolve()),
        "fingerprint": layout.fingerprint(),
        "versions": versions(),
        "git": git_commit(),
        "command": sys.argv,
        "normalization": {"mean": list(normalization[0]), "std": list(normalization[1])},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }


def build_optimizer(model: torch.nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        # biases and norm weights are not decayed: standard for ResNets, harmless for the study's settings
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = {"fused": True} if device.type == "cuda" else {}
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr, **fused)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0, **fused)


# --------------------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),) + tuple(state["python"][2:]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------- the loop


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches, device, dtype, channels_last: bool) -> np.ndarray:
    """Logits (float32, n x classes) for every batch, in order."""
    model.eval()
    out = []
    for x, _ in batches:
        x, _ = to_device(x, torch.zeros(0), device, channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out.append(model(x).float())  # kept on the device: one copy to the host at the end, not a sync per batch
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), np.float32)


def validate(model, batches: Batches, data: Data, comp: Competition, device, dtype, channels_last) -> dict[str, Any]:
    """Competition metric, loss and accuracy on the validation split; each image counted once."""
    share = distributed.shard(data.val_idx)  # ranks take disjoint slices, no padding rows
    logits = evaluate(model, batches.validation(share), device, dtype, channels_last)
    indices, logits = distributed.gather_rows(share, logits)
    labels = data.labels[indices]
    if len(indices) == 0:
        return {"val_loss": float("nan"), "val_accuracy": float("nan"), "val_metric": float("nan"), "indices": indices, "logits": logits}
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    loss = float(F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(labels)).item())
    return {
        "val_loss": loss,
        "val_accuracy": float((logits.argmax(1) == labels).mean()),
        "val_metric": comp.metric(labels, probs),
        "indices": indices,
        "logits": logits,
    }


def fit(
    comp: Competition,
    layout: Layout,
    recipe: Recipe,
    run: RunDir,
    resume: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resolution: Resolution | None = None,
) -> TrainResult:
    """Train `recipe` on `layout` into `run`; with `resume`, continue from the run's last checkpoint.
    `resolution`: how `recipe` was derived from the named one (recorded in config.json, said as notes)."""
    from . import features, models

    recipe.validate()
    features.check_recipe(recipe)
    started = time.perf_counter()
    device = resolve_device(recipe.device)
    if recipe.sync_bn and distributed.world_size() > 1 and device.type != "cuda":
        raise KitError(f"--sync-bn needs CUDA GPUs (torch's SyncBatchNorm has no {device.type} kernel); drop --sync-bn for --device {device.type}")
    seed_everything(recipe.seed)
    set_backend_flags(device)

    checkpoint = run.load_checkpoint("last") if resume and run.has_checkpoint("last") else None
    if distributed.is_main():
        run.ensure()
    distributed.barrier()
    data = prepare_data(layout, recipe, run, resume)
    model = models.build_model(recipe, len(layout.classes))
    mean, std = input_normalization(comp, recipe, model)
    if distributed.is_main() and not resume:
        derivation = resolution.record() if resolution else {}
        extra = {"skipped_images": data.train_cache.bad_ids, **derivation}
        run.create(run_config(comp, layout, recipe, (mean, std), extra))
    if recipe.sync_bn and distributed.world_size() > 1:
        # before freezing: conversion builds new norm layers, which would drop the frozen layers' eval-mode pin
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if recipe.freeze:
        models.set_backbone_frozen(model, True)
    backbone_frozen = recipe.freeze
    model.to(device)
    channels_last = use_channels_last(recipe, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    batches = Batches(data, comp, recipe, device, mean, std)
    if distributed.is_main():
        # the resolved choice behind `gpu_data` auto, for the user now and for whoever compares runs later
        data_path = batches.describe()
        progress.say(f"data: {data_path}")
        run.update_config(data_path=data_path)
    dtype = autocast_dtype(device, recipe)
    if features.wanted(recipe):
        if distributed.world_size() > 1:
            progress.say("feature cache off under DDP: every rank trains the frozen model on images")
        else:
            # the data-level branch: from here on batches are cached backbone features, steps train the head
            batches.features = features.prepare(
                model, batches.view_batches, recipe=recipe, spec=augmentation_for(comp, recipe),
                normalization=(mean, std), labels=data.labels, train_idx=data.train_idx, val_idx=data.val_idx,
                data_fingerprint=f"{layout.fingerprint()}/{data.train_cache.path.name}", work_dir=layout.work_dir,
                device=device, dtype=dtype, channels_last=channels_last,
                pipeline="gpu" if batches.use_gpu_data else "albumentations")
    steps_per_epoch = max(len(batches.train(0)), 1)
    optimizer = build_optimizer(model, recipe, device)
    scheduler = build_scheduler(optimizer, recipe, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    ema = None
    if recipe.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=recipe.ema, device=device)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    best_metric = None
    best_epoch = None
    if checkpoint is not None:
        train_state = checkpoint["train_state"]
        model.load_state_dict(train_state["model"])
        optimizer.load_state_dict(train_state["optimizer"])
        scheduler.load_state_dict(train_state["scheduler"])
        scaler.load_state_dict(train_state["scaler"])
        if ema is not None and train_state.get("ema") is not None:
            ema.module.load_state_dict(train_state["ema"])
        start_epoch = checkpoint["epoch"] + 1
        _continue_schedule_at(scheduler, start_epoch, steps_per_epoch)
        history = list(train_state["history"])
        best_metric, best_epoch = train_state["best_metric"], train_state["best_epoch"]
        set_rng_state(train_state["rng"])
        if distributed.is_main():
            run.write_history(history)

    train_model = distributed.wrap(model, device)
    eval_model = ema.module if ema is not None else model
    if recipe.compile:
        train_model = torch.compile(train_model)

    total_steps = steps_per_epoch * (recipe.epochs - start_epoch)
    interrupted = False
    ran_out = None  # the one-line error when memory ran out
    plotted = (len(history), time.perf_counter())  # (epochs in curves.png, when drawn)
    checkpointed_at = time.perf_counter()
    pending_best = None  # head-only epochs: the best checkpoint not yet written, see CHECKPOINT_EVERY_S
    stop = None  # the stop request a head-only epoch held back to its end
    saved_epoch = start_epoch - 1  # the epoch last.pt holds

    def save_last(epoch: int, eval_state: dict[str, torch.Tensor]) -> None:
        nonlocal saved_epoch
        run.save_checkpoint("last", {
            "model": eval_state,
            "epoch": epoch,
            "metric": history[-1]["val_metric"],
            "train_state": {
                # without EMA the evaluated model is the trained one: one copy, not two (on CUDA each _state_dict
                # call copies the weights to the host anew)
                "model": eval_state if eval_model is model else _state_dict(model),
                "ema": _state_dict(ema.module) if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
                "history": history,
                "best_metric": best_metric,
                "best_epoch": best_epoch,
            },
        }, keep_previous=True)
        saved_epoch = epoch

    if distributed.is_main():  # said once the run is sure to start: a failing one prints its error alone
        for note in (resolution.notes if resolution else []) + recipe.notes():
            print(f"note: {note}", file=sys.stderr, flush=True)
        for warning in resolution.warnings if resolution else []:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
    with progress.bar(total_steps if distributed.is_main() else None, f"training {run.name}") as bar:
        try:
            for epoch in range(start_epoch, recipe.epochs):
                if backbone_frozen and recipe.unfreeze_after is not None and epoch >= recipe.unfreeze_after:
                    models.set_backbone_frozen(model, False)
                    backbone_frozen = False
                    if distributed.world_size() > 1:
                        # DDP averages the gradients of the parameters that required them when it was built, the
                        # head's alone: wrap again so the backbone's are averaged too (and rank 0's weights shared)
                        del train_model
                        train_model = distributed.wrap(model, device)
                        if recipe.compile:
                            train_model = torch.compile(train_model)
                # head-only epochs: the batches are cached features, so the models stepped and evaluated are the
                # classifiers; they share their parameters with `model`, which checkpoints save whole
                head_only = batches.features is not None
                # a head-only epoch takes milliseconds and is checkpointed only now and then: a stop request waits for
                # the epoch's end, which is then checkpointed, so an interrupted run resumes exactly where it stopped
                with _interrupts_between_epochs(head_only) as stop:
                    step_model = model.get_classifier() if head_only else train_model
                    val_model = eval_model.get_classifier() if head_only else eval_model
                    row = train_one_epoch(step_model, model, ema, batches.train(epoch), optimizer, scheduler, scaler,
                                          device, dtype, channels_last, recipe, epoch, bar)
                    if len(data.val_idx):
                        distributed.broadcast_buffers(val_model)  # one model: rank 0's, the one its checkpoint saves
                        result = validate(val_model, batches, data, comp, device, dtype, channels_last)
                        row.update({k: result[k] for k in ("val_loss", "val_accuracy", "val_metric")})
                    else:
                        result = None
                        row.update(val_loss=float("nan"), val_accuracy=float("nan"), val_metric=float("nan"))
                    history.append(row)
                    improved = comp.metric.better(row["val_metric"], best_metric) or (result is None)
                    if improved:
                        best_metric, best_epoch = row["val_metric"], epoch
                    if distributed.is_main():
                        write = (not head_only or epoch == recipe.epochs - 1
                                 or time.perf_counter() - checkpointed_at >= CHECKPOINT_EVERY_S)
                        eval_state = _state_dict(eval_model) if write or improved else None
                        if improved:
                            # kept until written: a copy, since on a CPU the state shares memory with the live weights
                            pending_best = _BestCheckpoint(
                                {"model": eval_state if write else {k: v.clone() for k, v in eval_state.items()},
                                 "epoch": epoch, "metric": row["val_metric"]},
                                None if result is None else ([data.ids[i] for i in result["indices"]],
                                                             data.labels[result["indices"]], result["logits"]))
                        if write and pending_best is not None:
                            pending_best.save(run)
                            pending_best = None
                        if write:
                            checkpointed_at = time.perf_counter()
                            save_last(epoch, eval_state)
                        run.write_history(history)
                        if epoch == recipe.epochs - 1 or time.perf_counter() - plotted[1] >= CURVES_EVERY_S:
                            run.plot_curves(comp.metric.label)
                            plotted = (len(history), time.perf_counter())
                        progress.say(_epoch_line(row, comp))
                    if on_epoch:
                        on_epoch(row)
        except KeyboardInterrupt:
            interrupted = True
            if stop is not None and stop.requested and distributed.is_main() and saved_epoch < len(history) - 1:
                # held back to the end of a head-only epoch: the weights, optimizer and RNG are exactly that
                # epoch's, so it is checkpointed now (when not yet due) and the resume goes on from it
                save_last(len(history) - 1, _state_dict(eval_model))
        except Exception as error:
            memory = out_of_memory(error)
            if memory is None:
                raise
            # the finished epochs stay saved; the message, not the traceback, says what to change
            ran_out = _out_of_memory_message(memory, device, recipe, epoch, len(history), run)
    try:
        if distributed.is_main() and pending_best is not None:
            pending_best.save(run)  # interrupted between head-only checkpoints: the best model still reaches best.pt
        if distributed.is_main() and plotted[0] != len(history):
            run.plot_curves(comp.metric.label)  # an interrupted run still leaves curves of every finished epoch
    except KeyboardInterrupt:  # a second Ctrl-C: the writes are atomic, and the run must still say how to resume
        interrupted = True
    if ran_out:
        raise KitError(ran_out, exit_code=1)
    if not interrupted:
        # an interrupt reaches each rank at a different step, where a collective would never be matched: the
        # interrupted ranks leave at once (rank 0 wrote the last finished epoch's checkpoint already)
        distributed.barrier()
    return TrainResult(
        run_dir=run.path,
        epochs_run=len(history),
        best_epoch=best_epoch,
        best_metric=best_metric,
        final_metric=history[-1]["val_metric"] if history else None,
        seconds=time.perf_counter() - started,
        history=history,
        interrupted=interrupted,
    )


class _interrupts_between_epochs:
    """With `enabled` (and in the main thread, where signals are delivered), Ctrl-C and SIGTERM during the block
    are held back: `requested` turns True and KeyboardInterrupt is raised when the block ends."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self.saved: dict[int, Any] = {}

    def _hold(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "_interrupts_between_epochs":
        if self.enabled:
            for number in (signal.SIGINT, signal.SIGTERM):
                self.saved[number] = signal.getsignal(number)
                signal.signal(number, self._hold)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.saved.items():
            signal.signal(number, handler)
        if self.requested and exc[0] is None:
            raise KeyboardInterrupt


@dataclass
class _BestCheckpoint:
    """best.pt's content and the matching validation predictions (ids, labels, logits), until written."""

    checkpoint: dict[str, Any]
    predictions: tuple[list[str], np.ndarray, np.ndarray] | None

    def save(self, run: RunDir) -> None:
        run.save_checkpoint("best", self.checkpoint)
        if self.predictions is not None:
            run.save_val_predictions(*self.predictions)


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _epoch_line(row: dict[str, Any], comp: Competition) -> str:
    return (
        f"epoch {display_epoch(row['epoch'])}: lr {row['lr']:.4g} "
        f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
        f"val loss {row['val_loss']:.4f} {comp.metric.label} {row['val_metric']:.4f} | "
        f"{row['seconds']:.1f}s {row['images_per_s']:.0f} img/s"
    )


DIVERGENCE_CHECK_STEPS = 25
# Head-only epochs (cached features) take milliseconds and a full checkpoint about 0.3 s to write: their
# checkpoints are written at most this often and after the last epoch. A crash loses at most this stretch,
# which a resume replays exactly; best.pt is held in memory until then (and written on Ctrl-C).
CHECKPOINT_EVERY_S = 30.0
# Drawing curves.png takes about 0.3 s, longer than a head-only epoch or a fast CIFAR-10 epoch on a GPU:
# redraw at most this often, and after the last epoch (history.csv is still written every epoch).
CURVES_EVERY_S = 30.0


def _diverged(epoch: int, recipe: Recipe) -> None:
    raise KitError(f"training diverged at epoch {display_epoch(epoch)} (the loss is not finite); "
                   f"lower --lr (now {recipe.lr})")


def _continue_schedule_at(scheduler: torch.optim.lr_scheduler.LambdaLR, epoch: int, steps_per_epoch: int) -> None:
    """Resumed with another number of processes, an epoch has another number of steps: the per-step schedule
    would then read the saved step count as a different point of training. Continue it at `epoch`'s start."""
    step = epoch * steps_per_epoch
    if scheduler.last_epoch == step:
        return
    saved_steps = scheduler.last_epoch // max(epoch, 1)
    if distributed.is_main():
        print(f"warning: resuming with {distributed.world_size()} process(es): {steps_per_epoch} steps per epoch "
              f"instead of {saved_steps}; the learning-rate schedule continues at epoch {epoch + 1}, but batch order "
              f"and augmentation differ from an uninterrupted run (resume with the original --nproc to replay it "
              f"exactly)", file=sys.stderr)
    scheduler.last_epoch = step
    lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


def _out_of_memory_message(memory: str, device, recipe: Recipe, epoch: int, finished: int, run: RunDir) -> str:
    unfrozen_now = recipe.freeze and recipe.unfreeze_after is not None and epoch == recipe.unfreeze_after
    why = " (the backbone was unfrozen this epoch: its gradients and activations need memory too)" if unfrozen_now else ""
    # a run with no finished epoch is removed by `train`; one with finished epochs keeps them in its folder
    kept = f" and another --out; the {finished} finished epoch(s) stay in {run.path}" if finished else ""
    return (f"{memory} on {device} in epoch {epoch + 1} at batch size {recipe.batch_size}{why}: train again with a "
            f"lower --batch-size (or --img-size){', or --unfreeze-after none' if unfrozen_now else ''}{kept}")


def train_one_epoch(train_model, model, ema, batches, optimizer, scheduler, scaler, device, dtype, channels_last,
                    recipe: Recipe, epoch: int, bar) -> dict[str, Any]:
    # a pure function of (seed, epoch): dropout and worker-free augmentation replay exactly on resume
    # plus the rank: each rank's dropout and GPU-side augmentation draw differ (rank 0 draws as a single process)
    seed_everything(epoch_seed(recipe.seed, epoch, salt=1) + distributed.rank())
    train_model.train()  # frozen backbone BatchNorm layers stay in eval mode (models.set_backbone_frozen)
    lr = optimizer.param_groups[0]["lr"]
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    finite = torch.ones((), device=device, dtype=torch.bool)
    seen = 0
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches):
        x, y = to_device(x, y, device, channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = train_model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        # Divergence is checked on the device and read back every DIVERGENCE_CHECK_STEPS steps: reading the
        # loss every step would make the host wait for the GPU each step and stall the launch queue.
        finite &= torch.isfinite(loss.detach())
        if step % DIVERGENCE_CHECK_STEPS == 0 and not bool(finite):
            _diverged(epoch, recipe)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if recipe.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        total_loss += loss.detach().double() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        bar.advance(1, postfix=f"epoch {epoch + 1}/{recipe.epochs}")
    if not bool(finite):
        _diverged(epoch, recipe)
    stats = distributed.sum_tensor(torch.stack([total_loss, correct.double(), torch.tensor(float(seen), device=device, dtype=torch.float64)]))
    total_loss, correct_all, seen_all = stats.tolist()  # waits for the device: the epoch's time includes its queue
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": total_loss / max(seen_all, 1),
        "train_accuracy": correct_all / max(seen_all, 1),
        "seconds": seconds,
        "images_per_s": seen_all / max(seconds, 1e-9),
    }


# --------------------------------------------------------------------------------------- one-line API


def train(
    competition: str | Competition,
    data_dir: Path | str | None = None,
    recipe: str | Recipe | None = None,
    out: Path | str | None = None,
    runs_root: Path | str = DEFAULT_RUNS_DIR,
    tracker=None,
    **overrides: Any,
) -> TrainResult:
    """`train("dog_breed", arch="resnet34")`: resolve, read the data, train, and return the result."""
    from .competition import resolve
    from .layout import open_layout
    from .run import new_run_path

    comp = resolve(competition) if isinstance(competition, str) else competition
    base = recipe if isinstance(recipe, Recipe) else comp.recipe(recipe)
    requested = base.replace(**{k: v for k, v in overrides.items() if v is not None}).validate()
    comp.augmentation(requested.aug)  # unknown augmentation names fail before any data is read
    check_normalization(comp, requested)
    from . import models

    models.resolve_arch(requested.arch)  # unknown names fail before any data is read
    layout = open_layout(comp, data_dir)
    n_train = round(len(layout.train.ids) * (1 if requested.full_train else 1 - requested.val_fraction))
    n_train //= distributed.world_size()  # the batch is per process: each rank steps through its own share
    resolution = resolve_recipe(comp, requested, explicit_settings(comp, base, overrides), n_train)
    resolved = resolution.recipe
    path = Path(out) if out else new_run_path(Path(runs_root), comp.name, resolved.arch, resolved.name)
    if out and (path / "config.json").exists():
        raise KitError(f"{path} already holds a run; resume it with `kaggle-kit train --resume {path}` or choose another --out")
    if distributed.is_distributed():
        path = Path(distributed.broadcast_object(str(path)))
    run, created = RunDir(path), not path.exists()

    def remove_if_nothing_to_resume() -> None:
        # failed or stopped before finishing an epoch (bad weights, out of memory, Ctrl-C): no half-made folder is
        # left for `runs` to list or for the next `--out` to trip over. history.csv, written after every epoch,
        # says whether one finished (a head-only run's last.pt may not be due yet)
        if created and distributed.is_main() and not run.file(HISTORY).is_file():
            shutil.rmtree(path, ignore_errors=True)

    if tracker is not None:  # tracking.RunTracking: told the run folder, then fed every epoch's row
        tracker.attach(path)
    try:
        result = fit(comp, layout, resolved, run, resolution=resolution,
                     on_epoch=tracker.log_epoch if tracker else None)
    except BaseException:
        remove_if_nothing_to_resume()
        raise
    if result.interrupted:
        remove_if_nothing_to_resume()
    return result


def resume(run_dir: Path | str, data_dir: Path | str | None = None, competition: str | None = None,
           tracker=None) -> TrainResult:
    """Continue a run from its last checkpoint with exactly the settings it was started with. `competition`, when
    given, must be the run's own (a command line naming one is checked, not obeyed)."""
    from .competition import resolve
    from .layout import open_layout

    run = RunDir(run_dir)
    config = run.read_config()
    comp = resolve(config.competition)
    named = resolve(competition) if competition is not None else comp
    if named.name != comp.name:
        raise KitError(f"{run.path} is a {comp.name} run, not {named.name}: resume it with "
                       f"`kaggle-kit train --resume {run.path}`")
    recipe = config.recipe
    layout = open_layout(comp, data_dir or config.data_dir)
    if layout.fingerprint() != config.fingerprint:
        raise KitError(
            f"the data in {layout.root} differs from the data {run.path} was trained on "
            f"(fingerprint {layout.fingerprint()} vs {config.fingerprint}); pass the original --data-dir"
        )
    history = run.history()
    if len(history) >= recipe.epochs and run.has_checkpoint("last"):
        raise KitError(f"{run.path} already finished all {recipe.epochs} epochs; nothing to resume")
    if len(history) and not run.has_checkpoint("last"):
        print(f"warning: {run.path} has no last.pt (the run was killed before its first checkpoint): training starts "
              f"again from epoch 1 and replaces the {len(history)} epoch(s) in history.csv", file=sys.stderr)
    if tracker is not None:
        tracker.attach(run.path)
    return fit(comp, layout, recipe, run, resume=True, on_epoch=tracker.log_epoch if tracker else None)
