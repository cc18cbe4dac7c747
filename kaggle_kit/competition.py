"""The `Competition` declaration and the registry that finds one from what a user types.

Every competition-specific fact lives in `competitions/<name>/__init__.py` as one `Competition`
value; shared code reads those facts and never asks which competition it is running.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from .errors import KitError
from .metrics import Metric
from .recipe import AugmentSpec, Recipe


@dataclass(frozen=True)
class Competition:
    name: str  # short name, also the folder under competitions/
    slug: str  # Kaggle's slug
    title: str
    aliases: tuple[str, ...]
    label_file: str  # e.g. trainLabels.csv
    label_column: str  # e.g. label / breed
    sample_file: str  # e.g. sampleSubmission.csv
    id_kind: Literal["int", "hex", "text"]  # int ids sort numerically; hex ids are file stems; text: any string
    image_ext: str  # ".png" / ".jpg"
    metric: Metric
    # one label per row (a class name or integer grade), one column per class, or one column holding the
    # probability of `positive_class` (a binary target)
    submission_kind: Literal["label", "probabilities", "binary"]
    # "labels": the training labels' names (numeric names sort numerically)
    class_source: Literal["declared", "sample_columns", "labels"]
    recipes: dict[str, Recipe]
    default_recipe: str
    augmentations: dict[str, AugmentSpec]
    # the class names; for class_source "sample_columns" only for generating samples and checks,
    # since real runs read the classes from the sample submission itself
    declared_classes: tuple[str, ...] = ()
    images_packed: bool = False  # the current download packs each image folder in an inner archive
    id_column: str = "id"
    train_dir: str = "train"
    test_dir: str = "test"
    # archives that may stand in for a folder or file inside the download: name -> what it holds
    nested_archives: dict[str, str] = field(default_factory=dict)
    native_size: int | None = None  # fixed image size (CIFAR: 32); None for photos of any size
    # per-channel (mean, std) of the competition's images, for recipes that normalise by the data
    # (`normalize="dataset"`, e.g. a model trained from scratch as the study's CIFAR-10 runs were)
    dataset_mean_std: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    # what a fine-tuning recipe (pretrained=True) changes when run without pretrained weights: name -> settings
    from_scratch: dict[str, dict[str, Any]] = field(default_factory=dict)
    package_dir: Path | None = None
    # Kaggle takes a notebook (rerun offline on the hidden test set) instead of a CSV; `push` also asks Kaggle's
    # competition listing (isKernelsSubmissionsOnly), so an undeclared code competition is still recognised
    code_competition: bool = False
    # where a training image's class is written: a CSV keyed by id, one folder per class, the file name's prefix
    label_source: Literal["csv", "folders", "filename"] = "csv"
    id_has_extension: bool = False  # ids in the CSVs carry the file extension (`abc.tif`)
    positive_class: str | None = None  # the class a "binary" probability column reports
    group_column: str | None = None
    source: str = "built-in"

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/competitions/{self.slug}"

    @property
    def rules_url(self) -> str:
        return f"{self.url}/rules"

    @property
    def archive_name(self) -> str:
        return f"{self.slug}.zip"

    @property
    def plans_dir(self) -> Path | None:
        return self.package_dir / "plans" if self.package_dir else None

    def recipe(self, name: str | None = None) -> Recipe:
        name = name or self.default_recipe
        if name not in self.recipes:
            raise KitError(
                f"unknown recipe '{name}' for {self.name}{_did_you_mean(name, self.recipes)}: "
                f"choose one of {', '.join(self.recipes)}"
            )
        return self.recipes[name]

    def augmentation(self, name: str) -> AugmentSpec:
        if name not in self.augmentations:
            raise KitError(
                f"unknown augmentation '{name}' for {self.name}{_did_you_mean(name, self.augmentations)}: "
                f"choose one of {', '.join(self.augmentations)}"
            )
        return self.augmentations[name]


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _normalise(text: str) -> str:
    text = text.strip()
    match = re.search(r"kaggle\.com/(?:c|competitions)/([^/?#\s]+)", text)
    if match:
        text = match.group(1)
    return text.lower().replace("_", "-").strip("/")


@cache
def all_competitions() -> dict[str, Competition]:
    """Every declaration under the `competitions` package, by short name."""
    import competitions

    found = {}
    for info in pkgutil.iter_modules(competitions.__path__):
        module = importlib.import_module(f"competitions.{info.name}")
        comp = getattr(module, "COMPETITION", None)
        if isinstance(comp, Competition):
            found[comp.name] = comp
    return found


def resolve(name: str) -> Competition:
    """Find a competition by short name, slug, alias or pasted URL; a near miss gets "did you mean"."""
    wanted = _normalise(name)
    names = {}
    for comp in all_competitions().values():
        for key in (comp.name, comp.slug, *comp.aliases):
            names[_normalise(key)] = comp
    if wanted in names:
        return names[wanted]
    hint = _did_you_mean(wanted, names)
    known = ", ".join(sorted(all_competitions()))
    raise KitError(f"unknown competition '{name}'{hint}: known competitions are {known}")
