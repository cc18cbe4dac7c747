"""SPACE.toml: which recipe fields `tune` searches and how; every other field stays as the recipe and flags set it.

    pruner = "median"          # median | hyperband | none
    startup_trials = 5         # median: trials finished before any is pruned
    warmup_epochs = 0          # median: epochs a trial trains before it may be pruned
    seed = 0                   # the TPE sampler's seed

    [params.lr]
    distribution = "log-uniform"   # log-uniform | uniform | int | categorical
    low = 0.01
    high = 0.3

    [params.optimizer]
    distribution = "categorical"
    choices = ["sgd", "adamw"]

Every error is one line naming the file and the key, checked before any trial starts: each bound and choice must
make a valid recipe, so a bad range fails now and not in trial 12.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from ..config.recipe import Recipe
from ..core.errors import KitError

DISTRIBUTIONS = ("log-uniform", "uniform", "int", "categorical")
PRUNERS = ("median", "hyperband", "none")
# recipe fields a search must not vary, and why (a trial's score would not mean what the others' do)
FIXED = {
    "name": "it names the recipe, give it with --recipe",
    "device": "it says where trials run, not how they learn; give it with --device",
    "workers": "it changes speed, not the result; give it with --workers",
    "full_train": "a trial without validation images has no score to compare",
    "val_fraction": "every trial must be scored on the same validation images",
    "weights": "it is a file path; give it with --weights",
}
SETTINGS = {"pruner", "startup_trials", "warmup_epochs", "seed", "params"}


@dataclass(frozen=True)
class Param:
    name: str
    distribution: str
    low: float | None = None
    high: float | None = None
    step: int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial) -> Any:
        if self.distribution == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.distribution == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=self.step or 1)
        log = self.distribution == "log-uniform"
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=log)

    def extremes(self) -> list[Any]:
        return list(self.choices) if self.distribution == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class Space:
    source: str
    params: tuple[Param, ...]
    pruner: str = "median"
    startup_trials: int = 5
    warmup_epochs: int = 0
    seed: int = 0

    def suggest(self, trial) -> dict[str, Any]:
        return {param.name: param.suggest(trial) for param in self.params}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_space(path: Path | str) -> Space:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise KitError(f"{path}: no such space file; give --space SPACE.toml (see competitions/*/spaces/)") from None
    except tomllib.TOMLDecodeError as error:
        raise KitError(f"{path}: not valid TOML ({error})") from None
    return parse_space(data, str(path))


def parse_space(data: dict[str, Any], source: str) -> Space:
    unknown = sorted(set(data) - SETTINGS)
    if unknown:
        raise KitError(f"{source}: unknown setting {unknown[0]!r}; use {', '.join(sorted(SETTINGS))}")
    pruner = data.get("pruner", "median")
    if pruner not in PRUNERS:
        raise KitError(f"{source}: pruner {pruner!r} is not one of {', '.join(PRUNERS)}")
    for key in ("startup_trials", "warmup_epochs", "seed"):
        if key in data and (not isinstance(data[key], int) or data[key] < 0):
            raise KitError(f"{source}: {key} = {data[key]!r}: give a whole number 0 or more")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        raise KitError(f"{source}: no [params.FIELD] tables: declare at least one recipe field to search")
    parsed = tuple(_param(source, name, spec) for name, spec in params.items())
    settings = {k: data[k] for k in ("startup_trials", "warmup_epochs", "seed") if k in data}
    return Space(source=source, params=parsed, pruner=pruner, **settings)


def _param(source: str, name: str, spec: Any) -> Param:
    where = f"{source}: [params.{name}]"
    fields = {f.name for f in dataclasses.fields(Recipe)}
    if name not in fields:
        raise KitError(f"{where}: {name!r} is not a recipe field that can vary (see `kaggle-kit train --help`)")
    if name in FIXED:
        raise KitError(f"{where}: {name} cannot vary in a search: {FIXED[name]}")
    if not isinstance(spec, dict):
        raise KitError(f"{where}: give a table with distribution = one of {', '.join(DISTRIBUTIONS)}")
    kind = spec.get("distribution")
    if kind not in DISTRIBUTIONS:
        raise KitError(f"{where}: distribution = {kind!r}: use one of {', '.join(DISTRIBUTIONS)}")
    allowed = {"distribution", "choices"} if kind == "categorical" else {"distribution", "low", "high"}
    extra = sorted(set(spec) - allowed - ({"step"} if kind == "int" else set()))
    if extra:
        raise KitError(f"{where}: unknown key {extra[0]!r} for a {kind} distribution")
    param = _categorical(where, name, spec) if kind == "categorical" else _range(where, name, kind, spec)
    for value in param.extremes():
        try:
            Recipe().replace(**{name: value}).validate()
        except KitError as error:
            raise KitError(f"{where}: {value!r} is no valid {name}: {error}") from None
    return param


def _categorical(where: str, name: str, spec: dict[str, Any]) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise KitError(f'{where}: choices must be a non-empty list, e.g. choices = ["sgd", "adamw"]')
    if len(set(map(repr, choices))) != len(choices):
        raise KitError(f"{where}: choices repeat a value")
    return Param(name, "categorical", choices=tuple(choices))


def _range(where: str, name: str, kind: str, spec: dict[str, Any]) -> Param:
    low, high = spec.get("low"), spec.get("high")
    number = int if kind == "int" else (int, float)
    if not isinstance(low, number) or not isinstance(high, number) or isinstance(low, bool):
        raise KitError(f"{where}: give low and high as {'whole numbers' if kind == 'int' else 'numbers'}")
    if not low < high:
        raise KitError(f"{where}: empty range: low ({low}) must be below high ({high})")
    if kind == "log-uniform" and low <= 0:
        raise KitError(f"{where}: a log-uniform range needs low above 0 (got {low})")
    hint = str(get_type_hints(Recipe)[name])
    if kind == "int" and "int" not in hint:
        raise KitError(f"{where}: {name} is not a whole-number field: use uniform or log-uniform")
    if kind != "int" and "float" not in hint:
        raise KitError(f"{where}: {name} takes no fractional values: use int or categorical")
    step = spec.get("step")
    if step is not None and (not isinstance(step, int) or step < 1 or (high - low) % step):
        raise KitError(f"{where}: step {step!r} must be a whole number 1 or more dividing high - low")
    return Param(name, kind, low=low, high=high, step=step)
