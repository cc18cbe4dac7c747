"""`kk.lr_find`: the learning-rate range test for the recipe `train` would use; `kk.tune`: an Optuna study."""

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


def tune(
    competition: str | None = None,
    space: Path | str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    study: str | None = None,
    storage: str | None = None,
    folds: int | None = None,
    data_dir: Path | str | None = None,
    recipe: str | None = None,
    resume: Path | str | None = None,
    ray: str | None = None,
    track: list[str] | None = None,
    heartbeat: int = 60,
    **overrides: Any,
):
    """`kaggle-kit tune`: an Optuna study over the `space` file's recipe fields (or `resume`, a study folder, with
    its own settings); `ray`: a Ray cluster's address (or "auto"), each trial a Ray task; `track`: "mlflow" logs
    each trial's run, tagged with its study, trial and params. The StudySummary."""
    from ..core.errors import KitError
    from ..study import tune as tuning

    if resume is not None:
        if competition or space or study or folds or recipe or overrides:
            raise KitError(f"resume={resume} continues the study with its study.json settings: give nothing else")
        plan = tuning.load_plan(Path(resume), data_dir)
    else:
        if not competition or space is None:
            raise KitError("give a competition and space= (a SPACE.toml), or resume= a study folder")
        plan = tuning.plan_study(competition, space, study, storage, data_dir, recipe, folds, **overrides)
    return tuning.run_study(plan, trials, timeout, storage, heartbeat, ray, track)
