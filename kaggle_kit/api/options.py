"""The run options of `train` beside the recipe: one object that `kk.train`'s keywords and the flags fill alike.

Every field is named as its `kaggle-kit train` flag (snake_case; `hooks` is the repeatable `--hook`), so a
notebook call and a command line say the same thing in the same words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..config.flags import SKIPPED, recipe_to_argv
from ..config.recipe import Recipe
from ..core.errors import KitError


@dataclass(frozen=True)
class RunOptions:
    """How a training request runs; the recipe's own settings travel beside it as `overrides`."""

    data_dir: Path | None = None
    recipe: str | None = None
    out: Path | None = None
    resume: Path | None = None
    nproc: int = 1
    folds: int | None = None
    fold: str | None = None  # "1,3": the folds of a group to train
    gpus: str | None = None  # "0,1": one fold per GPU
    ray: str | None = None  # a Ray cluster's address (or "auto"): one Ray task per fold
    analyze: bool = True
    track: tuple[str, ...] = ()
    pseudo_labels: Path | None = None
    pseudo_threshold: float | None = None
    hooks: tuple[Any, ...] = ()  # hook objects, or "module:Class" text (what --hook gives)
    quiet: bool = False  # no progress lines


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(RunOptions))
RECIPE_NAMES = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in SKIPPED)


def _comma_text(value: Any) -> str | None:
    """`[1, 3]` or `"1,3"` or `2` -> `"1,3"` / `"2"`: a notebook may give a list where the flag takes text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return ",".join(str(item) for item in value)


def _names(value: Any) -> tuple:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) or not isinstance(value, Iterable) else tuple(value)


def split_settings(settings: dict[str, Any]) -> tuple[RunOptions, dict[str, Any]]:
    """`kk.train`'s keywords -> (run options, recipe overrides); an unknown name fails naming the close ones."""
    unknown = [name for name in settings if name not in OPTION_NAMES and name not in RECIPE_NAMES]
    if unknown:
        import difflib

        known = OPTION_NAMES + RECIPE_NAMES
        hints = [f"{name} (did you mean {', '.join(difflib.get_close_matches(name, known, 3))}?)" for name in unknown]
        raise KitError(
            f"unknown setting {', '.join(hints)}: train takes the recipe's fields and the run options "
            f"{', '.join(OPTION_NAMES)}"
        )
    given = {name: value for name, value in settings.items() if name in OPTION_NAMES and value is not None}
    for name in ("data_dir", "out", "resume", "pseudo_labels"):
        if given.get(name) is not None:
            given[name] = Path(given[name])
    for name in ("fold", "gpus"):
        given[name] = _comma_text(given.get(name))
    given["track"] = _names(given.get("track"))
    given["hooks"] = _names(given.get("hooks"))
    overrides = {name: value for name, value in settings.items() if name in RECIPE_NAMES and value is not None}
    return RunOptions(**given), overrides


def train_argv(competition: str | None, options: RunOptions, overrides: dict[str, Any]) -> list[str]:
    """The `kaggle-kit train` command line saying the same request: what `--nproc` workers run."""
    argv = ["train"] + ([competition] if competition else [])
    names = ("data_dir", "recipe", "out", "resume", "folds", "fold", "gpus", "ray", "pseudo_labels", "pseudo_threshold")
    for name in names:
        value = getattr(options, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += ["--nproc", str(options.nproc)] + ([] if options.analyze else ["--no-analyze"])
    argv += ["--quiet"] if options.quiet else []
    for kind in options.track:
        argv += ["--track", kind]
    for hook in options.hooks:
        if not isinstance(hook, str):
            raise KitError(
                f"hook {hook!r}: the {options.nproc} processes of nproc={options.nproc} each import their hooks, "
                "so give it as 'module:Class' text (an object cannot cross into another process)"
            )
        argv += ["--hook", hook]
    return argv + recipe_to_argv(overrides)
