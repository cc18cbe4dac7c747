"""A run folder loaded for inference: its config, its model from a checkpoint, on a device; the data it was
trained on, found again."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..competitions.registry import Competition, all_competitions, resolve
from ..competitions.resolution import settle
from ..competitions.targets import target_of
from ..config.recipe import Recipe
from ..core.errors import KitError
from ..data.tabular import encoded_rows, load_encoding
from ..records.run_config import RunConfig
from ..records.run_folder import RunDir
from ..training.device import resolve_device, use_channels_last

CHECKPOINTS = ("best", "last", "swa")  # swa.pt: a run trained with --swa-epochs


@dataclass
class LoadedRun:
    """A run folder's settings and its model with the checkpoint's weights, ready to evaluate."""

    run: RunDir
    config: RunConfig
    competition: Competition
    recipe: Recipe
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model: torch.nn.Module
    checkpoint: str
    epoch: int | None
    device: torch.device


def load_run(run_dir: Path | str, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """Read config.json, rebuild the model and load the checkpoint's evaluation weights onto `device`."""
    from ..models import factory as models

    if checkpoint not in CHECKPOINTS:
        raise KitError(f"unknown checkpoint '{checkpoint}': use --checkpoint best, last or swa")
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise KitError(
            f"run folder {run.path} does not exist: pass a folder made by `kaggle-kit train` (runs/<competition>/...)"
        )
    config = run.read_config()
    required = (
        ("competition", config.competition),
        ("recipe", config.recipe_dict),
        ("classes", config.classes),
        ("normalization", config.normalization),
    )
    for key, value in required:
        if value is None:
            raise KitError(
                f"{run.file('config.json')}: field '{key}' is missing; the run folder is damaged - train again"
            )
    competition = resolve(config.competition)
    # the checkpoint holds every weight: no ImageNet download, no weights file needed at predict time
    recipe = settle(competition, config.recipe.replace(pretrained=False, weights=None))  # an older run's sizes
    classes = list(config.classes)
    mean, std = config.mean, config.std
    state = run.load_checkpoint(checkpoint)
    if "model" not in state:
        raise KitError(
            f"{run.file(checkpoint + '.pt')}: no 'model' weights inside; the checkpoint is not from `kaggle-kit train`"
        )
    encoding = load_encoding(run)  # a run with tabular columns rebuilds its tabular branch
    model = models.build_model(recipe, target_of(competition).head_size(classes), encoding.width if encoding else 0)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise KitError(
            f"{run.file(checkpoint + '.pt')} does not fit the model config.json describes ({recipe.arch}, "
            f"{len(classes)} classes): {first[:160]}; the run folder is damaged or mixed - train again"
        ) from None
    target = resolve_device(device)
    model.to(target).eval()
    if use_channels_last(recipe, target):
        model = model.to(memory_format=torch.channels_last)
    epoch = state.get("epoch")
    return LoadedRun(
        run,
        config,
        competition,
        recipe,
        classes,
        mean,
        std,
        model,
        checkpoint,
        int(epoch) if epoch is not None else None,
        target,
    )


def tabular_rows(loaded: LoadedRun, layout, split: str, ids) -> np.ndarray | None:
    """The run's encoded tabular columns of `ids` ("train": the labels CSV's, "test": test.csv's), in that order;
    None for a run without tabular columns."""
    return encoded_rows(loaded.run, layout, split, list(ids))


def open_run_layout(loaded: LoadedRun, data_dir: Path | str | None = None):
    """The run's competition data (`data_dir`, else the folder it was trained on), classes checked."""
    from ..data.layout import default_data_dir, open_layout

    comp, config = loaded.competition, loaded.config
    given = data_dir or config.data_dir
    folder = Path(given) if given else default_data_dir(comp)
    # the run's own data is its competition's, whatever its download is named (config.json keeps the zip's folder)
    trained_on = config.data_dir and Path(config.data_dir).resolve() in (folder.resolve(), folder.resolve().parent)
    other = None if trained_on else _other_competition_in(folder, comp)
    if other is not None:
        raise KitError(
            f"{folder} holds {other.slug} data but {loaded.run.path} is a {comp.name} run: "
            f"pass the {comp.slug} data folder with --data-dir"
        )
    try:
        layout = open_layout(comp, folder)
    except KitError as error:
        if data_dir:
            raise
        raise KitError(f"{error} (the run's data folder, from config.json; pass --data-dir to use another)") from None
    if layout.classes != loaded.classes:
        k = next(
            (i for i, (a, b) in enumerate(zip(layout.classes, loaded.classes)) if a != b),
            min(len(layout.classes), len(loaded.classes)),
        )
        found = repr(layout.classes[k]) if k < len(layout.classes) else "nothing"
        expected = repr(loaded.classes[k]) if k < len(loaded.classes) else "nothing"
        raise KitError(
            f"the classes of {layout.sample_path} differ from the run's at class {k + 1}: {found} where the run "
            f"has {expected}; predict with the data the run was trained on"
        )
    return layout


def _other_competition_in(folder: Path, comp: Competition) -> Competition | None:
    """Another competition whose download or sample submission `folder` plainly holds (and `comp`'s does not)."""
    if folder.is_file() and folder.suffix == ".zip":
        folder, names = folder.parent, {folder.name}
    elif folder.is_dir():
        names = {entry.name for entry in os.scandir(folder)}
    else:
        return None

    def holds(c: Competition) -> bool:
        return bool(names & {c.archive_name, c.sample_file, f"{c.sample_file}.zip"})

    if holds(comp):
        return None
    return next((c for c in all_competitions().values() if c.name != comp.name and holds(c)), None)


def validation_positions(run: RunDir, layout, cache) -> np.ndarray:
    """Cache positions of the run's validation images (val_predictions.npz's ids), any target kind."""
    ids = run.val_predictions()[0]
    position = {image_id: n for n, image_id in enumerate(cache.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise KitError(
            f"validation id {missing[0]} of {run.file('val_predictions.npz')} is not in {layout.labels_path} "
            f"({len(missing)} missing): pass the --data-dir the run was trained on"
        )
    return np.array([position[i] for i in ids], dtype=np.int64)
