"""A named recipe + the settings a user gave + the data -> the Recipe a run trains with, and why.

Recipes are written for one scale: an image size, pretrained weights, a dataset of tens of thousands of
images. A user who changes one of those (a smaller `--img-size`, `--no-pretrained` offline, a subset first)
would otherwise get settings that no longer fit: an evaluation resize for 224 at 64, a randomly initialised
backbone kept frozen, three optimizer steps an epoch. Settings the user did not give follow the ones they
did; settings they gave are kept, with a warning where they cannot fit. Every change is a `note:` and is
recorded in config.json (`derived`), and a resume reads the resolved recipe back instead of deriving again.

Measured on generated samples of issue 14's size (`kaggle-kit sample cifar10 --n-train 1400 --n-test 500`,
`kaggle-kit sample dog_breed --n-train 1400 --n-test 300`; CPU; scored on the sample's answers.csv):
- `train dog_breed --arch resnet18 --no-pretrained --img-size 64 --epochs 10`: hidden-test log loss 2.30
  before (eval_resize 256, frozen random backbone, lr 0.01), 0.52 after (eval_resize 73, nothing frozen,
  lr 0.1, the study's crops).
- `train cifar10 --arch resnet18 --stem imagenet --no-pretrained --epochs 15`: hidden-test accuracy 0.98
  before, 1.00 after (batch 64 at lr 0.071). The generated classes are far easier than photographs, so
  this sample does not show the 0.14 the issue saw on real images; the lr rule comes from its measurements.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config.recipe import AugmentSpec, Recipe
from .registry import Competition

MIN_STEPS = 25  # optimizer steps per epoch below which a recipe's batch is too large for the data
MIN_BATCH = 16  # smaller batches make batch norm's statistics too noisy to shrink further


@dataclass
class Resolution:
    recipe: Recipe  # what the run trains with
    requested: Recipe  # the named recipe with the user's settings, before anything was derived
    derived: dict[str, dict[str, Any]] = field(default_factory=dict)  # field -> {"value", "was", "why"}
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def change(self, name: str, value: Any, why: str) -> None:
        was = getattr(self.recipe, name)
        if was == value:
            return
        self.recipe = dataclasses.replace(self.recipe, **{name: value})
        first = self.derived.get(name, {}).get("was", was)  # a value derived twice records the recipe's own
        self.derived[name] = {"value": value, "was": first, "why": why}
        self.notes.append(f"{name}={_show(value)} (recipe: {_show(was)}): {why}")

    def fill(self, name: str, value: Any, why: str) -> None:
        """A setting the recipe leaves open (None) settled: recorded with its reason, not said as a note (it
        changes nothing the recipe asked for)."""
        self.recipe = dataclasses.replace(self.recipe, **{name: value})
        self.derived[name] = {"value": value, "was": None, "why": why}

    def record(self) -> dict[str, Any]:
        """What config.json keeps: the settings asked for, and each derived value with its reason."""
        return {"requested_recipe": self.requested.to_dict(), "derived": self.derived}


def explicit_settings(comp: Competition, recipe: Recipe, overrides: dict[str, Any]) -> set[str]:
    """The fields the user set: the non-None overrides, and, for a Recipe built elsewhere (an experiment's cell),
    every field that differs from the named recipe it started from."""
    given = {key.replace("-", "_") for key, value in overrides.items() if value is not None}
    named = comp.recipes.get(recipe.name)
    if named is not None and named is not recipe:
        given |= {f.name for f in dataclasses.fields(Recipe) if getattr(recipe, f.name) != getattr(named, f.name)}
    return given - {"seed"}


def resolve_recipe(comp: Competition, requested: Recipe, given: set[str], n_train: int) -> Resolution:
    """`requested` (named recipe + the user's settings in `given`) fitted to `n_train` training images."""
    base = comp.recipes.get(requested.name, requested)
    res = Resolution(recipe=requested, requested=requested)
    _follow_pretrained(comp, base, res, given)
    _follow_img_size(base, res, given)
    _follow_data_size(res, given, n_train)
    # the user's request was validated before any data was read (training.entry.check_request), and what is
    # derived above keeps within the checks; what is settled below is filled once for every reader
    for name, (value, why) in _settled(comp, res.recipe).items():
        res.fill(name, value, why)
    return res


def settle(comp: Competition, recipe: Recipe) -> Recipe:
    """`recipe` with every size it leaves open filled in: the one place they are computed. A resolved recipe comes
    out unchanged; a run folder written before these were recorded gets the values it trained with."""
    settled = _settled(comp, recipe)
    return dataclasses.replace(recipe, **{name: value for name, (value, _) in settled.items()}) if settled else recipe


def _settled(comp: Competition, recipe: Recipe) -> dict[str, tuple[Any, str]]:
    """Field -> (value, why) for each derived size `recipe` leaves as None."""
    eval_resize = recipe.eval_resize or recipe.img_size
    values = {
        "eval_resize": (eval_resize, "no resize before the evaluation crop: the shorter side is --img-size"),
        # the train crop and the evaluation resize both read from the cached copy: keep enough pixels for both
        "cache_side": (max(recipe.img_size, eval_resize), "the larger of img_size and eval_resize"),
        # pixel sizes (pre-resize, translate, cutout) are written for the competition's native size
        "aug_scale": (
            recipe.img_size / comp.native_size if comp.native_size else 1.0,
            f"img_size {recipe.img_size} / native size {comp.native_size}" if comp.native_size else "no native size",
        ),
        # evaluation keeps no activations for a backward pass, so twice the batch fits where training's did
        "val_batch_size": (recipe.batch_size * 2, f"twice batch_size {recipe.batch_size}"),
    }
    return {name: value for name, value in values.items() if getattr(recipe, name) is None}


def _follow_pretrained(comp: Competition, base: Recipe, res: Resolution, given: set[str]) -> None:
    recipe = res.recipe
    if recipe.pretrained or recipe.weights:
        return
    # freezing keeps pretrained features; a random backbone kept fixed only hides the head from what it needs
    why = "no pretrained weights (--no-pretrained and no --weights) to keep, so the whole network trains"
    wanted = ("freeze", "feature_cache_views")
    asked = [f"--{name.replace('_', '-')}" for name in wanted if name in given and getattr(recipe, name)]
    if recipe.freeze and asked:
        res.warnings.append(
            f"{' and '.join(asked)} without pretrained weights: a head trains on a random, fixed backbone"
        )
    elif recipe.freeze:
        res.change("freeze", False, why)
    if not res.recipe.freeze:
        if recipe.unfreeze_after is not None and "unfreeze_after" not in given:
            res.change("unfreeze_after", None, why)
        if recipe.feature_cache_views and "feature_cache_views" not in given:
            res.change("feature_cache_views", 0, why)
    scratch = comp.from_scratch.get(base.name, {}) if base.pretrained else {}
    for name, value in scratch.items():
        if name not in given:
            res.change(name, value, f"recipe {base.name}'s from-scratch setting (it fine-tunes pretrained weights)")


def _follow_img_size(base: Recipe, res: Resolution, given: set[str]) -> None:
    recipe = res.recipe
    if recipe.img_size == base.img_size or base.eval_resize is None or "eval_resize" in given:
        return
    # the recipe's evaluation crop is a fixed fraction of the resized image (224 of 256): keep that fraction
    eval_resize = max(recipe.img_size, round(base.eval_resize * recipe.img_size / base.img_size))
    res.change(
        "eval_resize",
        eval_resize,
        f"keeps the recipe's ratio {base.eval_resize}/{base.img_size} at --img-size {recipe.img_size}",
    )


def _follow_data_size(res: Resolution, given: set[str], n_train: int) -> None:
    """Too few optimizer steps an epoch for the data: accumulation goes first (it only enlarges the effective
    batch, which small data does not need), then the batch shrinks, lr following the effective batch."""
    recipe = res.recipe
    effective = recipe.batch_size * recipe.accum_steps
    steps = _updates(n_train, recipe.batch_size, recipe.accum_steps)
    if steps >= MIN_STEPS:
        return
    batch = max(MIN_BATCH, 2 ** round(math.log2(max(n_train / MIN_STEPS, 1))))
    if batch >= effective:
        return
    at = f"batch {effective}" if recipe.accum_steps == 1 else f"batch {recipe.batch_size} x {recipe.accum_steps} steps"
    why = f"{n_train} training images at {at} give {steps} optimizer steps an epoch"
    if recipe.accum_steps > 1 and "accum_steps" not in given:
        res.change("accum_steps", max(batch // recipe.batch_size, 1), f"{why}; accumulation is not needed")
    if batch < res.recipe.batch_size:
        if "batch_size" in given:
            res.warnings.append(
                f"{why} (fewer than {MIN_STEPS}); --batch-size {batch} would give {n_train // batch}, kept as given"
            )
        else:
            accum = res.recipe.accum_steps
            at_new = f"{batch}" if accum == 1 else f"{batch} x {accum} steps"
            res.change("batch_size", batch, f"{why}, {_updates(n_train, batch, accum)} at {at_new}")
    kept = res.recipe
    updates = _updates(n_train, kept.batch_size, kept.accum_steps)
    if "accum_steps" in given and kept.accum_steps > 1 and updates < MIN_STEPS:
        # the batch shrank, the given accumulation did not: a few updates an epoch, a tiny run barely trains
        res.warnings.append(
            f"{n_train} training images at batch {kept.batch_size} x {kept.accum_steps} steps give {updates} "
            f"optimizer steps an epoch (fewer than {MIN_STEPS}); --accum-steps 1 would give "
            f"{_updates(n_train, kept.batch_size, 1)}, --accum-steps {kept.accum_steps} kept as given"
        )
    ratio = res.recipe.batch_size * res.recipe.accum_steps / effective
    if ratio != 1 and "lr" not in given:
        factor = {"linear": ratio, "sqrt": math.sqrt(ratio), "keep": 1.0}
        res.change(
            "lr",
            float(f"{recipe.lr * factor[recipe.lr_scaling]:.4g}"),
            f"the recipe's lr_scaling={recipe.lr_scaling} from batch {effective} to "
            f"{res.recipe.batch_size * res.recipe.accum_steps}",
        )


def _updates(n_train: int, batch: int, accum_steps: int) -> int:
    """Optimizer steps an epoch (at least one: a short last group still steps)."""
    effective = batch * accum_steps
    return n_train // effective if n_train > effective else 1


def augmentation_for(comp: Competition, recipe: Recipe) -> AugmentSpec:
    """The recipe's augmentation with its pixel sizes (pre-resize, translate, cutout) following `img_size`: they
    are written for the competition's native size, and a 12-pixel cutout means another thing at 96 pixels."""
    spec = comp.augmentation(recipe.aug)
    scale = settle(comp, recipe).aug_scale
    if scale == 1:
        return spec
    return dataclasses.replace(
        spec,
        pre_resize=round(spec.pre_resize * scale) if spec.pre_resize else None,
        translate=min(round(spec.translate * scale), recipe.img_size - 1),
        cutout=min(round(spec.cutout * scale), recipe.img_size),
    )


def _show(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
