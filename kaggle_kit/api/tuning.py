"""`kk.lr_find`: the learning-rate range test for the recipe `train` would use with the same keywords."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def lr_find(
    competition: str,
    data_dir: Path | str | None = None,
    recipe: str | None = None,
    out: Path | str | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    **overrides: Any,
):
    """Loss against rate over `num_steps` exponentially spaced rates; the LRFindResult (suggestion, png, csv)."""
    from ..training.lr_find import lr_find as run_range_test

    return run_range_test(
        competition, data_dir, recipe, out, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, **overrides
    )
