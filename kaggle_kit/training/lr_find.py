"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates for Training Neural Networks"; fastai's
LRFinder): train from the recipe's starting point while the rate grows exponentially from 1e-7 to 10 over ~100
steps, follow the smoothed loss, stop once it diverges, and suggest a rate.

    recipe resolved as `train` resolves it -> the same data path, model, freezing and optimizer as `train` ->
    one optimizer step per rate -> lr_find.csv, lr_find.png (loss vs rate, the suggestion marked), lr_find.json

Nothing is saved but those files: the model and optimizer are discarded afterwards, so no state is restored.

The suggestion is the rate of the smoothed loss's minimum divided by 10 (fastai's `lr_min / 10`). The other common
rule, the steepest descent of the smoothed loss, reads a derivative off about a hundred noisy points: on a small
data set (a sample, a first look at a competition) it jumps between runs by an order of magnitude, and it can sit
right next to the divergence. The minimum of a smoothed curve moves little, and a tenth of it is by construction
below both the minimum and the divergence that follows it: a rate at which the loss still falls clearly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..competitions.registry import Competition
from ..config.recipe import Recipe
from ..core import progress
from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..core.errors import KitError
from ..data.datasets import seed_everything
from .device import autocast_dtype, resolve_device, set_backend_flags, to_device

START_LR, END_LR, NUM_STEPS = 1e-7, 10.0, 100
SMOOTHING = 0.98  # fastai's exponential smoothing of the loss (bias-corrected)
DIVERGENCE = 4.0  # the loss has diverged once its smoothed value is this many times its best (fastai's rule)
MIN_STEPS = 5  # fewer points than this make no curve to read a minimum from
RULE = "minimum of the smoothed loss / 10"
DEFAULT_ROOT = Path("lr-find")


@dataclass
class LrFindResult:
    competition: str
    recipe: dict[str, Any]
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    minimum_lr: float  # where the smoothed loss was lowest
    suggestion: float
    rule: str
    diverged_lr: float | None  # the rate at which the smoothed loss diverged; None when it never did
    steps_planned: int
    seconds: float
    out: Path
    warning: str | None = None  # why the suggestion is not one to train with, and what to try instead

    @property
    def png(self) -> Path:
        return self.out / "lr_find.png"


def check_range(start_lr: float, end_lr: float, num_steps: int) -> None:
    if num_steps < MIN_STEPS:
        raise KitError(f"--num-steps {num_steps}: give at least {MIN_STEPS} steps (100 is the usual range test)")
    if not (start_lr > 0 and math.isfinite(start_lr)):
        raise KitError(f"--start-lr {start_lr}: give a positive rate, e.g. 1e-7")
    if not (end_lr > start_lr and math.isfinite(end_lr)):
        raise KitError(f"--end-lr {end_lr}: give a rate above --start-lr {start_lr:g}, e.g. 10")


def lr_find(
    competition: str | Competition,
    data_dir: Path | str | None = None,
    recipe: str | Recipe | None = None,
    out: Path | str | None = None,
    *,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    num_steps: int = NUM_STEPS,
    **overrides: Any,
) -> LrFindResult:
    """Run the range test for the recipe `train` would train with (same flags), write its files to `out`
    (default lr-find/<competition>/<time>-<arch>) and return the curve and the suggested rate."""
    from .entry import resolve_training
    from .setup import say_notes

    check_range(start_lr, end_lr, num_steps)
    comp, layout, resolution = resolve_training(competition, data_dir, recipe, overrides)
    resolved = resolution.recipe
    folder = Path(out) if out else DEFAULT_ROOT / comp.name / f"{time.strftime('%Y%m%d-%H%M%S')}-{resolved.arch}"
    if folder.exists() and not folder.is_dir():
        raise KitError(f"--out {folder} is a file: give a folder for lr_find.png and lr_find.csv")
    say_notes(resolved, resolution)
    started = time.perf_counter()
    lrs, losses, smoothed = _range_test(comp, layout, resolved, start_lr, end_lr, num_steps)
    minimum_lr, suggestion, diverged_lr = suggest(lrs, smoothed, start_lr)
    result = LrFindResult(
        comp.name,
        resolved.to_dict(),
        lrs,
        losses,
        smoothed,
        minimum_lr,
        suggestion,
        RULE,
        diverged_lr,
        num_steps,
        time.perf_counter() - started,
        folder,
        assess(lrs, smoothed, minimum_lr, diverged_lr, (start_lr, end_lr)),
    )
    _write(result)
    return result


def _trainer(comp, layout, recipe: Recipe):
    """What `train`'s prepare builds, minus the run folder: device, training batches, placed model, optimizer."""
    from ..data.batches import Batches, prepare_data
    from ..models import factory as models
    from .setup import build_optimizer, input_normalization, place_model

    device = resolve_device(recipe.device)
    seed_everything(recipe.seed)
    set_backend_flags(device)
    data = prepare_data(layout, recipe, None, resume=False)  # the training split (no run folder: nothing saved)
    model = models.build_model(recipe, len(layout.classes))
    mean, std = input_normalization(comp, recipe, model)
    model, channels_last = place_model(model, recipe, device)
    batches = Batches(data, comp, recipe, device, mean, std)
    return device, channels_last, batches, model, build_optimizer(model, recipe, device)


def _range_test(comp, layout, recipe: Recipe, start_lr: float, end_lr: float, num_steps: int):
    """(rates, losses, smoothed losses) of one step per rate, up to the divergence."""
    device, channels_last, batches, model, optimizer = _trainer(comp, layout, recipe)
    dtype = autocast_dtype(device, recipe)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    growth = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    model.train()
    stream = _endless(batches)
    with progress.bar(num_steps, "lr-find") as bar:
        for step in range(num_steps):
            lr = start_lr * growth**step
            set_rate(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            loss = 0.0
            for _ in range(recipe.accum_steps):  # one step of --accum-steps batches, as train steps
                x, y = to_device(*next(stream), device, channels_last)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    part = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing) / recipe.accum_steps
                scaler.scale(part).backward()
                loss += part.detach()
            if recipe.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            value = float(loss.detach())  # one read per step: the curve needs every value anyway
            average = SMOOTHING * average + (1 - SMOOTHING) * value
            current = average / (1 - SMOOTHING ** (step + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(current)
            best = min(best, current)
            bar.advance(1, postfix=f"lr {lr:.2e} loss {current:.3f}")
            if not math.isfinite(current) or current > DIVERGENCE * best or step + 1 == num_steps:
                break
    return lrs, losses, smoothed


def set_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The head's rate `lr`; with --layer-decay each lower group keeps its fraction of it (`lr_scale`), as `train`
    sets them, so the rate tested is the --lr that train would take."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _endless(batches):
    """Training batches epoch after epoch, as the range test may take more steps than one epoch has."""
    epoch = 0
    while True:
        empty = True
        for batch in batches.train(epoch):
            empty = False
            yield batch
        if empty:
            raise KitError("no training batches: the training split is empty; use a data folder with images")
        epoch += 1


def suggest(lrs: list[float], smoothed: list[float], start_lr: float) -> tuple[float, float, float | None]:
    """(rate at the smoothed minimum, the suggestion, the rate it diverged at or None)."""
    finite = [i for i, value in enumerate(smoothed) if math.isfinite(value)]
    if len(finite) < MIN_STEPS:
        raise KitError(
            f"the loss diverged after {len(finite)} step(s), before a curve could form: lower --start-lr "
            f"(now {start_lr:g}) or check the data"
        )
    best = min(finite, key=lambda i: smoothed[i])
    last = len(smoothed) - 1
    diverged = not math.isfinite(smoothed[last]) or smoothed[last] > DIVERGENCE * smoothed[best]
    return lrs[best], max(lrs[best] / 10, start_lr), lrs[last] if diverged else None


# a smoothed minimum above this fraction of the starting loss: the loss did not really fall (batch-to-batch noise
# alone moves a smoothed loss by a few percent over a short range; a rate that trains takes off far more)
NEVER_FELL = 0.9
EDGE = 0.1  # a minimum within this fraction of the steps from either end sits at the range's edge


def assess(
    lrs: list[float], smoothed: list[float], minimum_lr: float, diverged_lr: float | None, tested: tuple[float, float]
) -> str | None:
    """Why the suggestion cannot be trusted, with what to try, or None. A curve whose loss never fell, or whose
    minimum lies at the edge of the range tested, has no minimum to divide by 10: the suggestion would be the range's
    own start (`--lr 1e-7`, which trains nothing) or a rate where the loss still falls fastest."""
    start_lr, end_lr = tested
    finite = [v for v in smoothed if math.isfinite(v)]
    best, first = min(finite), finite[0]
    if best > NEVER_FELL * first:
        wider = f"a higher --end-lr (now {end_lr:g}), " if end_lr < 1 else ""
        return (
            f"the loss never fell (smoothed {first:.4g} at the start, lowest {best:.4g}): no rate from {start_lr:g} "
            f"to {end_lr:g} trained this model here; try {wider}more steps (--num-steps 300) or a smaller "
            "--batch-size, check the labels (`kaggle-kit info`), and keep the recipe's own --lr meanwhile"
        )
    position = lrs.index(minimum_lr) / max(len(lrs) - 1, 1)
    if position <= EDGE or minimum_lr / 10 < start_lr:  # the suggestion would be clamped to the range's start
        return (
            f"the loss was lowest at the range's start ({minimum_lr:.2e}): the suggestion is the range's edge, not a "
            f"minimum; try a lower --start-lr (now {start_lr:g}), e.g. {start_lr / 100:g}"
        )
    if position >= 1 - EDGE and diverged_lr is None:
        return (
            f"the loss was still falling at the range's end ({minimum_lr:.2e}) and never diverged: the minimum lies "
            f"beyond it; try a higher --end-lr (now {end_lr:g}), e.g. {end_lr * 100:g}, or more --num-steps"
        )
    return None


def _write(result: LrFindResult) -> None:
    result.out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    for step, row in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        writer.writerow([step, *(f"{value:.6g}" for value in row)])
    atomic_write_text(result.out / "lr_find.csv", table.getvalue())
    summary = {k: v for k, v in asdict(result).items() if k not in ("lrs", "losses", "smoothed")}
    atomic_write_text(result.out / "lr_find.json", json.dumps(summary, indent=2, default=str))
    atomic_write_bytes(result.png, _plot(result))


def _plot(result: LrFindResult) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.lrs, result.losses, color="tab:blue", alpha=0.3, label="loss")
    ax.plot(result.lrs, result.smoothed, color="tab:blue", label="smoothed loss")
    ax.axvline(result.suggestion, color="tab:green", linestyle="--", label=f"suggested {result.suggestion:.2e}")
    ax.axvline(result.minimum_lr, color="tab:gray", linestyle=":", label=f"minimum {result.minimum_lr:.2e}")
    if result.diverged_lr is not None:
        ax.axvline(result.diverged_lr, color="tab:red", linestyle=":", label=f"diverged {result.diverged_lr:.2e}")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    # the diverging tail would squash the part worth reading: show up to a little above the starting loss
    ax.set_ylim(min(finite) * 0.9, max(finite[0] * 1.3, min(finite) * 1.5))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    verdict = f"no clear rate: {result.warning.split(':')[0]}" if result.warning else f"suggested: {RULE}"
    ax.set_title(f"lr-find {result.competition} {result.recipe['arch']}\n{verdict}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
