"""`kaggle-kit lr-find`: the learning-rate range test, with every `train` flag for the recipe it tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..config.flags import with_recipe_flags
from .options import QUIET, apply_quiet


def lr_find(
    competition: str = typer.Argument(..., help="cifar10, dog_breed, a slug or a competition URL"),
    data_dir: Optional[Path] = typer.Option(
        None, help="data folder or download zip (default data/<slug>, or /kaggle/input/<slug>)"
    ),
    recipe: Optional[str] = typer.Option(None, help="named recipe, as for `train` (default the competition's best)"),
    out: Optional[Path] = typer.Option(
        None, metavar="DIR", help="where lr_find.png/.csv/.json go (default lr-find/<competition>/<time>-<arch>)"
    ),
    start_lr: float = typer.Option(1e-7, help="the first rate tried"),
    end_lr: float = typer.Option(10.0, help="the last rate tried (the test stops earlier once the loss diverges)"),
    num_steps: int = typer.Option(100, help="optimizer steps, one per rate, spaced exponentially"),
    quiet: bool = QUIET,
    **overrides,
) -> None:
    """Learning-rate range test: loss vs rate (PNG) and a suggested --lr for `train` with the same flags."""
    from ..api.tuning import lr_find as run_range_test

    apply_quiet(quiet)

    result = run_range_test(
        competition, data_dir, recipe, out, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, **overrides
    )
    diverged = f", diverged at {result.diverged_lr:.2e}" if result.diverged_lr is not None else ", did not diverge"
    print(
        f"tested {len(result.lrs)} of {result.steps_planned} rates from {result.lrs[0]:.2e} to {result.lrs[-1]:.2e} "
        f"in {result.seconds:.0f}s: smoothed loss lowest at {result.minimum_lr:.2e}{diverged}"
    )
    batch, optimizer = result.recipe["batch_size"], result.recipe["optimizer"]
    accum = result.recipe.get("accum_steps", 1)
    at = f"batch size {batch}" + (f" x {accum} accumulation steps" if accum > 1 else "")
    # the rate belongs to the batch and optimizer it was measured with (resolving may have shrunk the batch)
    print(f"suggested --lr {result.suggestion:.2e} for {optimizer} at {at} ({result.rule})")
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
    print(f"plot: {result.png}")


def register(app: typer.Typer) -> None:
    app.command("lr-find", context_settings={"help_option_names": ["-h", "--help"]})(with_recipe_flags(lr_find))
