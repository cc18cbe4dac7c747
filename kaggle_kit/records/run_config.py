"""A run folder's config.json as one typed, read-only value, and the one function that writes it.

`RunConfig.read(path)` (or `RunDir.read_config()`) is the only reader: every module asks it for
`config.competition`, `config.recipe`, `config.calibration_of("best")`, ... instead of indexing the
JSON by string. Folders written by earlier versions still load: a missing key reads as None (or empty),
and the flat `calibration` block of a run made before calibration was stored per checkpoint is read as
the calibration of the checkpoint it names.

`write_config(path, data)` writes the whole file atomically; `update_config(path, **changes)` changes
top-level keys and keeps every other one, including keys this version does not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.recipe import Recipe
from ..core.atomic import atomic_write_text
from ..core.errors import KitError

CONFIG = "config.json"


def _calibrations(stored: Any) -> dict[str, dict[str, Any]]:
    """config.json's calibration per checkpoint name ("best", "last"). A run folder made before calibration was
    stored per checkpoint holds one flat block: it is read as the calibration of the checkpoint it names."""
    if not isinstance(stored, dict):
        return {}
    if "checkpoint" in stored:
        return {str(stored["checkpoint"]): stored}
    return {name: block for name, block in stored.items() if isinstance(block, dict)}


@dataclass(frozen=True)
class RunConfig:
    """What config.json says; None (or empty) where the file does not say it."""

    competition: str | None = None
    metric: str | None = None  # the competition metric's name when the run was made
    recipe_dict: dict[str, Any] | None = None  # the resolved Recipe as stored; `recipe` parses it
    # the Recipe as asked for, before it was fitted to the data (competitions.resolution); None in runs made before that
    requested_recipe: dict[str, Any] | None = None
    # field -> {"value", "was", "why"}: what resolving changed, and why (resolve.py); empty in earlier runs
    derived: dict[str, dict[str, Any]] = field(default_factory=dict)
    augment: dict[str, Any] | None = None  # the AugmentSpec as stored
    classes: tuple[str, ...] | None = None
    normalization: dict[str, Any] | None = None  # {"mean": [...], "std": [...]}; `mean` / `std` parse it
    data_dir: str | None = None
    fingerprint: str | None = None
    data_path: str | None = None  # the data path gpu_data resolved to
    effective_batch: int | None = None  # images per optimizer step, all ranks and accumulated batches together
    processes: int | None = None  # the ranks that started it (--nproc); None in runs made before it was recorded
    skipped_images: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    git: str | None = None
    command: tuple[str, ...] = ()
    tta: bool | None = None  # best.pt's calibrated choice
    temperature: float | None = None  # best.pt's calibrated temperature
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)  # checkpoint name -> its calibration
    pseudo_labels: dict[str, Any] | None = None  # source, threshold, counts (pseudo_labels.py); None: none used

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        classes = data.get("classes")
        temperature = data.get("temperature")
        return cls(
            competition=str(data["competition"]) if data.get("competition") else None,
            metric=str(data["metric"]) if data.get("metric") else None,
            recipe_dict=data.get("recipe") if isinstance(data.get("recipe"), dict) else None,
            requested_recipe=data.get("requested_recipe") if isinstance(data.get("requested_recipe"), dict) else None,
            derived=dict(data["derived"]) if isinstance(data.get("derived"), dict) else {},
            augment=data.get("augment") if isinstance(data.get("augment"), dict) else None,
            classes=tuple(str(c) for c in classes) if isinstance(classes, list) else None,
            normalization=data.get("normalization") if isinstance(data.get("normalization"), dict) else None,
            data_dir=data.get("data_dir") or None,
            fingerprint=data.get("fingerprint"),
            data_path=data.get("data_path"),
            effective_batch=data.get("effective_batch"),
            processes=data.get("processes"),
            skipped_images=tuple(data.get("skipped_images") or ()),
            versions=dict(data.get("versions") or {}),
            git=data.get("git"),
            command=tuple(data.get("command") or ()),
            tta=data.get("tta"),
            temperature=temperature,
            calibrations=_calibrations(data.get("calibration")),
            pseudo_labels=data.get("pseudo_labels") if isinstance(data.get("pseudo_labels"), dict) else None,
        )

    @classmethod
    def read(cls, run_dir: Path | str) -> RunConfig:
        """The config.json of run folder `run_dir`; a missing or unreadable file is a KitError."""
        return cls.from_dict(read_config_dict(run_dir))

    @property
    def recipe(self) -> Recipe:
        """The run's resolved Recipe (parsed here, so a listing of old runs never trips over a field it skips)."""
        return Recipe.from_dict(self.recipe_dict or {})

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.normalization["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.normalization["std"])

    def calibration_of(self, checkpoint: str = "best") -> dict[str, Any] | None:
        """The stored calibration of one checkpoint, or None."""
        return self.calibrations.get(checkpoint)


def read_config_dict(run_dir: Path | str) -> dict[str, Any]:
    """config.json as stored (every key, known or not): what `update_config` rewrites."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.is_file():
        if (run_dir / "folds.json").is_file():  # a fold group: the commands that need one run take a fold of it
            raise KitError(f"{run_dir} is a fold group, not one run: pass one of its folds, e.g. {run_dir / 'fold-1'}")
        raise KitError(f"{run_dir} is not a run folder (no {CONFIG}); pass a folder made by `kaggle-kit train`")
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise KitError(f"{path}: unreadable ({error}); the run folder is damaged") from None
    if not isinstance(data, dict):
        raise KitError(f"{path}: not a JSON object of settings; the run folder is damaged")
    return data


def write_config(run_dir: Path | str, data: dict[str, Any]) -> None:
    """The one writer of config.json: the whole file, atomically."""
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(data, indent=2, sort_keys=True, default=str))


def update_config(run_dir: Path | str, **changes: Any) -> dict[str, Any]:
    """config.json with `changes` to its top-level keys; every other key is kept as it is."""
    data = read_config_dict(run_dir)
    data.update(changes)
    write_config(run_dir, data)
    return data
