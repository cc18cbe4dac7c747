"""`TrainState`: everything training changes, and its round trip through `last.pt`.

`last.pt` keeps the keys it has always had ("model", "epoch", "metric", "train_state" with model, ema, optimizer,
scheduler, scaler, rng, history, best_metric, best_epoch), so run folders written before this package resume.
"train_state"'s "hooks" (absent in older runs) holds each hook's `state_dict()` by its name (`hook_states`).
"""

from __future__ import annotations

import io
import random
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core import distributed
from ..core.errors import KitError


@dataclass
class TrainState:
    model: torch.nn.Module
    train_model: torch.nn.Module  # what steps: `model`, or its DDP wrapper / compiled form
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: Any = None  # timm ModelEmaV3, or None
    swa: Any = None  # torch.optim.swa_utils.AveragedModel of the last epochs' weights (--swa-epochs), or None
    epoch: int = 0  # the next epoch to train, 0-based like every machine-read epoch (run.display_epoch)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    hooks: list[Any] = field(default_factory=list)  # the fit's hooks, whose state_dict()s last.pt holds
    saved_hooks: dict[str, Any] = field(default_factory=dict)  # last.pt's hook states, until `fit` restores them
    # not checkpointed: how this fit is ending
    stop: str | None = None  # set by a hook: why the loop ends after this epoch
    interrupted: bool = False

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def record(self, row: dict[str, Any], improved: bool) -> None:
        self.history.append(row)
        if improved:
            self.best_metric, self.best_epoch = row["val_metric"], row["epoch"]

    def checkpoint(self, eval_state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """`last.pt` after the last recorded epoch; `eval_state` is the evaluated model's weights."""
        return {
            "model": eval_state,
            "epoch": len(self.history) - 1,
            "metric": self.history[-1]["val_metric"],
            "train_state": {
                # without EMA the evaluated model is the trained one: one copy, not two (on CUDA each state_dict
                # call copies the weights to the host anew)
                "model": eval_state if self.eval_model is self.model else state_dict(self.model),
                "ema": state_dict(self.ema.module) if self.ema is not None else None,
                "swa": {k: v.detach().cpu() for k, v in self.swa.state_dict().items()} if self.swa else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_state(),
                "history": self.history,
                "best_metric": self.best_metric,
                "best_epoch": self.best_epoch,
                "hooks": hook_states(self.hooks),
            },
        }

    def restore(self, checkpoint: dict[str, Any], steps_per_epoch: int) -> None:
        """Continue from `last.pt`: the epoch after the one it holds, with its weights, optimizer and RNG."""
        saved = checkpoint["train_state"]
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        if self.ema is not None and saved.get("ema") is not None:
            self.ema.module.load_state_dict(saved["ema"])
        if self.swa is not None and saved.get("swa") is not None:
            self.swa.load_state_dict(saved["swa"])
        self.epoch = checkpoint["epoch"] + 1
        continue_schedule_at(self.scheduler, self.epoch, steps_per_epoch)
        self.history = list(saved["history"])
        self.best_metric, self.best_epoch = saved["best_metric"], saved["best_epoch"]
        self.saved_hooks = dict(saved.get("hooks") or {})
        set_rng_state(saved["rng"])


def hook_states(hooks: list[Any]) -> dict[str, Any]:
    """{name: state} of the hooks that carry state, each checked to load with `weights_only=True`. A name is the
    hook's `module:Class`, with `#2`, `#3`... for a second and third hook of one class."""
    states = {}
    for key, hook in keyed(hooks):
        state = hook.state_dict()
        if state:
            check_weights_only(key, state)
            states[key] = state
    return states


def restore_hook_states(hooks: list[Any], saved: dict[str, Any]) -> None:
    for key, hook in keyed(hooks):
        if key in saved:
            hook.load_state_dict(saved[key])


def keyed(hooks: list[Any]) -> list[tuple[str, Any]]:
    seen: dict[str, int] = {}
    pairs = []
    for hook in hooks:
        name = hook_name(hook)
        seen[name] = seen.get(name, 0) + 1
        pairs.append((name if seen[name] == 1 else f"{name}#{seen[name]}", hook))
    return pairs


def hook_name(hook: Any) -> str:
    """`module:Class`: what config.json records and `hooks.loading.load_hook` imports again."""
    cls = type(hook)
    return f"{cls.__module__}:{cls.__qualname__}"


PLAIN_TYPES = (torch.Tensor, str, int, float, bool, type(None), bytes, set, torch.Size, torch.dtype, torch.device)


def check_weights_only(key: str, state: Any) -> None:
    """Refuse a hook state that last.pt could not load with `weights_only=True` (the loading every checkpoint
    gets: a pickle that runs code on load is a security hole). torch's own loader decides; the message names the
    first value of another type than tensors and plain Python values."""
    buffer = io.BytesIO()
    try:
        torch.save(state, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except Exception:
        odd = _first_odd_value(state)
        what = f"a {type(odd).__module__}.{type(odd).__qualname__}" if odd is not None else "a value"
        raise KitError(
            f"hook {key}: its state_dict() holds {what}, which last.pt could not load with weights_only=True; "
            f"keep tensors and plain Python values (dict, list, tuple, str, int, float, bool, None) in it"
        ) from None


def _first_odd_value(value: Any) -> Any:
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        for item in value:
            odd = _first_odd_value(item)
            if odd is not None:
                return odd
        return None
    # exact types: numpy's float64 is a float to isinstance, yet not to the weights-only loader
    return None if isinstance(value, torch.Tensor) or type(value) in PLAIN_TYPES else value


def state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights on the host, unwrapped from torch.compile and DDP."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


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


def continue_schedule_at(scheduler: torch.optim.lr_scheduler.LambdaLR, epoch: int, steps_per_epoch: int) -> None:
    """Resumed with another number of processes, an epoch has another number of steps: the per-step schedule
    would then read the saved step count as a different point of training. Continue it at `epoch`'s start."""
    step = epoch * steps_per_epoch
    if scheduler.last_epoch == step:
        return
    saved_steps = scheduler.last_epoch // max(epoch, 1)
    if distributed.is_main():
        print(
            f"warning: resuming with {distributed.world_size()} process(es): {steps_per_epoch} steps per epoch "
            f"instead of {saved_steps}; the learning-rate schedule continues at epoch {epoch + 1}, but batch order "
            f"and augmentation differ from an uninterrupted run (resume with the original --nproc to replay it "
            f"exactly)",
            file=sys.stderr,
        )
    scheduler.last_epoch = step
    lrs = [base * factor(step) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs
