"""Augmentation pipelines from an AugmentSpec: Albumentations per image (the reference); the GPU batch path
that matches it is `gpu_augment`.

Train-time order (both paths, see `AugmentSpec`): pre-resize (square) -> random resized crop (area `crop_scale`,
aspect `crop_ratio`) or resize/centre crop to `img_size` -> translate (reflect-pad by `translate`, random crop
back) -> horizontal flip -> colour jitter -> Gaussian noise -> cutout -> normalisation.

Albumentations path (`build_train_transform`, `build_eval_transform`): uint8 HxWx3 RGB numpy in, float32 CHW
tensor out. Geometry and colour work on uint8. With noise or cutout the image is then scaled to float [0, 1]:
the noise then has exactly the spec's std (GaussNoise on uint8 truncates the noise, shrinking its std by up to
15%), and cutout fills its hole with the normalisation mean (zero once normalised, as in the fast-ResNet
cutout). Without them Normalize stays on uint8, where it is a lookup table. Compose runs with strict=True: a
wrong argument name raises instead of warning and silently falling back to a default.

GPU path (`GpuAugment`): the same spec on a whole uint8 batch on its own device: the same crop sampling rule
as albumentations' RandomResizedCrop (10 tries, then the ratio-clamped centre crop), bilinear resampling with
the same half-pixel convention as cv2, per-sample flip, jitter factors, noise std and cutout position.
A batch is either one (N, H, W, 3) tensor (fixed-size images: CIFAR-10) or `RaggedImages` (photos of
different sizes back to back: Dog Breed), whose crops are sampled straight from each image
(`ragged_resized_crops`), clamped at the crop's edge pixels exactly as cv2 resizing a cropped image is.
Differences, kept on purpose: colour jitter runs brightness -> contrast -> saturation in a fixed order
(albumentations shuffles the order per image) and stays in float (no rounding to uint8 between steps); on
ragged images a `pre_resize` is folded into the crop's coordinates (one resampling instead of two).

Workers: `seed_worker` (DataLoader `worker_init_fn`) seeds numpy, `random` and the dataset's Albumentations
pipelines from `torch.initial_seed()`, and turns OpenCV's thread pool off. Pipelines built here also re-seed
themselves on their first call in a new worker, so workers never repeat each other's augmentations even
without `seed_worker` (kaggle-facts section 6)."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # otherwise importing albumentations checks PyPI

import random  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.pytorch import ToTensorV2  # noqa: E402

from ..config.recipe import AugmentSpec  # noqa: E402
from ..core.errors import KitError  # noqa: E402

RGB_TO_GRAY = (0.299, 0.587, 0.114)  # what cv2.COLOR_RGB2GRAY, and so albumentations' ColorJitter, uses

CROP_ATTEMPTS = 10  # RandomResizedCrop tries this many boxes before falling back to a centre crop

# Reflection without repeating the edge pixel: cv2's BORDER_REFLECT_101 is torch's F.pad(mode="reflect").
TRANSLATE_BORDER = cv2.BORDER_REFLECT_101


def check_spec(spec: AugmentSpec, img_size: int) -> None:
    """A KitError naming the first AugmentSpec field that no pipeline can apply at `img_size`."""
    scale, ratio, noise = spec.crop_scale, spec.crop_ratio, spec.noise_std
    checks = [
        (spec.pre_resize is None or spec.pre_resize >= 1, "pre_resize", spec.pre_resize, "use a size of 1 or more"),
        (
            scale is None or 0 < scale[0] <= scale[1] <= 1,
            "crop_scale",
            scale,
            "use 0 < min <= max <= 1, e.g. (0.64, 1.0)",
        ),
        (0 < ratio[0] <= ratio[1], "crop_ratio", ratio, "use 0 < min <= max, e.g. (0.75, 1.333)"),
        (0 <= spec.translate < img_size, "translate", spec.translate, f"use 0 to {img_size - 1} pixels"),
        (spec.brightness >= 0, "brightness", spec.brightness, "use 0 or more"),
        (spec.contrast >= 0, "contrast", spec.contrast, "use 0 or more"),
        (spec.saturation >= 0, "saturation", spec.saturation, "use 0 or more"),
        (
            noise is None or 0 <= noise[0] <= noise[1] <= 1,
            "noise_std",
            noise,
            "use 0 <= min <= max <= 1, e.g. (0.01, 0.05)",
        ),
        (0 <= spec.cutout <= img_size, "cutout", spec.cutout, f"use 0 to {img_size} pixels"),
        (0 <= spec.policy_ops <= len(POLICY_OPS), "policy_ops", spec.policy_ops, f"use 0 to {len(POLICY_OPS)}"),
        (0 < spec.policy_magnitude <= 1, "policy_magnitude", spec.policy_magnitude, "use a fraction in (0, 1]"),
        (0 <= spec.erasing <= 1, "erasing", spec.erasing, "use a probability in [0, 1]"),
    ]
    for ok, name, value, fix in checks:
        if not ok:
            raise KitError(f"invalid augmentation setting {name}={value}: {fix}")


class WorkerSeededCompose(A.Compose):
    """A Compose with one shared random state, re-seeded from the worker's torch seed in each DataLoader worker.

    Why: a Compose draws from generators created in the main process; forked (or unpickled) workers get
    identical copies and would repeat each other's augmentations. Why one shared state: `Compose(seed=int)`
    gives every step its own identically seeded generator, which correlates e.g. flip and noise decisions.
    """

    def __init__(self, transforms: Sequence[Any], seed: int):
        super().__init__(list(transforms), strict=True)
        self.worker_seed: int | None = None
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        reseed_pipeline(self, seed)

    def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.seed != self.worker_seed:
            self.worker_seed = worker.seed
            self.reseed(worker.seed)
        return super().__call__(*args, force_apply=force_apply, **data)


def reseed_pipeline(pipeline: A.BaseCompose, seed: int) -> None:
    """Give `pipeline` and all its steps one numpy and one Python generator seeded with `seed`."""
    pipeline.set_random_state(np.random.default_rng(seed % 2**63), random.Random(seed))


def build_train_transform(
    spec: AugmentSpec,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    seed: int | None = None,
    normalize: bool = True,
    resize: int | None = None,
) -> A.Compose:
    """uint8 HxWx3 RGB -> augmented, normalised float32 3 x img_size x img_size tensor.

    `seed` None takes `torch.initial_seed()`, so `torch.manual_seed` makes the main-process stream reproducible.
    `normalize=False` leaves normalisation to `DeviceNormalize` on the training device (the trainer's DataLoader
    path): the tensor is then uint8, or float in [0, 1] when the spec has noise or cutout - four times fewer
    bytes to collate, pin and copy, and no per-image float maths in the workers.
    `resize`: without a random crop, the shorter side before the centre crop - the evaluation's `eval_resize`, so
    training sees objects at the scale evaluation does (default `img_size`).
    """
    check_spec(spec, img_size)
    steps = [*_geometry_steps(spec, img_size, resize or img_size), *_policy_steps(spec), *_colour_steps(spec)]
    if spec.noise_std is not None or spec.cutout or spec.erasing:
        steps += [A.ToFloat(max_value=255.0), *_float_steps(spec, mean)]
        if normalize:
            steps.append(A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=1.0))
    elif normalize:  # uint8 all the way: Normalize then uses a lookup table, several times faster than float maths
        steps.append(A.Normalize(mean=tuple(mean), std=tuple(std)))
    steps.append(ToTensorV2())
    return WorkerSeededCompose(steps, seed=torch.initial_seed() if seed is None else seed)


def build_eval_transform(
    img_size: int, eval_resize: int | None, mean: Sequence[float], std: Sequence[float]
) -> A.Compose:
    """Shorter side to `eval_resize` (default `img_size`), centre crop `img_size`, normalise, tensor."""
    short_side = eval_resize or img_size
    if short_side < img_size:
        raise KitError(
            f"invalid setting eval_resize={eval_resize}: use at least img_size ({img_size}) or leave it unset"
        )
    steps = [
        *_resize_centre_crop_steps(short_side, img_size),
        A.Normalize(mean=tuple(mean), std=tuple(std)),
        ToTensorV2(),
    ]
    return A.Compose(steps, strict=True)


def _geometry_steps(spec: AugmentSpec, img_size: int, resize: int) -> list[A.BasicTransform]:
    steps: list[A.BasicTransform] = []
    if spec.pre_resize:
        steps.append(A.Resize(height=spec.pre_resize, width=spec.pre_resize))
    if spec.crop_scale is not None:
        steps.append(
            A.RandomResizedCrop(size=(img_size, img_size), scale=spec.crop_scale, ratio=spec.crop_ratio, p=1.0)
        )
    else:
        steps += _resize_centre_crop_steps(resize, img_size)
    if spec.translate:
        padded = img_size + 2 * spec.translate
        steps.append(
            A.PadIfNeeded(min_height=padded, min_width=padded, position="center", border_mode=TRANSLATE_BORDER)
        )
        steps.append(A.RandomCrop(height=img_size, width=img_size))
    if spec.hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return steps


def _resize_centre_crop_steps(short_side: int, crop: int) -> list[A.BasicTransform]:
    # both are no-ops on images already crop x crop (CIFAR at its native 32x32)
    return [A.SmallestMaxSize(max_size=short_side), A.CenterCrop(height=crop, width=crop)]


# RandAugment's list (Cubuk et al. 2020) as Albumentations ops on uint8, each at full strength for magnitude 1;
# Identity is in the list so that a drawn op may leave the image alone, as in RandAugment and TrivialAugment.
POLICY_OPS = (
    "identity",
    "rotate",
    "shear",
    "translate",
    "brightness",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "equalize",
    "autocontrast",
)

WORKERS_ONLY = ("policy_ops", "erasing")  # AugmentSpec fields GpuAugment does not apply


def needs_workers(spec: AugmentSpec) -> list[str]:
    """The fields of `spec` only the Albumentations pipeline applies: a run with any trains through workers."""
    return [name for name in WORKERS_ONLY if getattr(spec, name)]


def _policy_steps(spec: AugmentSpec) -> list[A.BasicTransform]:
    """`policy_ops` ops drawn per image (A.SomeOf, without repeats), each at a strength drawn uniformly up to
    `policy_magnitude` of its maximum (TrivialAugment's uniform strength, RandAugment's fixed count)."""
    if not spec.policy_ops:
        return []
    m = spec.policy_magnitude
    ops = {
        "identity": A.NoOp(p=1.0),
        "rotate": A.Affine(rotate=(-30 * m, 30 * m), border_mode=TRANSLATE_BORDER, p=1.0),
        "shear": A.Affine(shear={"x": (-17 * m, 17 * m), "y": (0, 0)}, border_mode=TRANSLATE_BORDER, p=1.0),
        "translate": A.Affine(
            translate_percent={"x": (-0.3 * m, 0.3 * m), "y": (0, 0)}, border_mode=TRANSLATE_BORDER, p=1.0
        ),
        "brightness": A.RandomBrightnessContrast(brightness_limit=0.9 * m, contrast_limit=0.0, p=1.0),
        "contrast": A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.9 * m, p=1.0),
        "sharpness": A.Sharpen(alpha=(0.0, 0.9 * m), lightness=(1.0, 1.0), p=1.0),
        "posterize": A.Posterize(num_bits=(8 - round(4 * m), 8), p=1.0),
        "solarize": A.Solarize(threshold_range=(1 - m, 1.0), p=1.0),
        "equalize": A.Equalize(p=1.0),
        "autocontrast": A.AutoContrast(p=1.0),
    }
    return [A.SomeOf([ops[name] for name in POLICY_OPS], n=spec.policy_ops, replace=False, p=1.0)]


def _colour_steps(spec: AugmentSpec) -> list[A.BasicTransform]:
    if not (spec.brightness or spec.contrast or spec.saturation):
        return []
    return [
        A.ColorJitter(brightness=spec.brightness, contrast=spec.contrast, saturation=spec.saturation, hue=0.0, p=1.0)
    ]


def _float_steps(spec: AugmentSpec, mean: Sequence[float]) -> list[A.BasicTransform]:
    steps: list[A.BasicTransform] = []
    if spec.noise_std is not None:
        steps.append(A.GaussNoise(std_range=spec.noise_std, mean_range=(0.0, 0.0), per_channel=True, p=1.0))
    if spec.cutout:
        hole = (spec.cutout, spec.cutout)
        steps.append(
            A.CoarseDropout(
                num_holes_range=(1, 1),
                hole_height_range=hole,
                hole_width_range=hole,
                fill=tuple(float(m) for m in mean),
                p=1.0,
            )
        )
    if spec.erasing:  # filled with the mean, as cutout: zero once normalised
        steps.append(A.Erasing(fill=tuple(float(m) for m in mean), p=spec.erasing))
    return steps


def effective_parameters(transform: A.BaseCompose | A.BasicTransform) -> dict[str, dict[str, Any]]:
    """The parameters each step actually holds, keyed by class name in pipeline order ("Name#2" for repeats)."""
    found: dict[str, dict[str, Any]] = {}
    for step in _steps(transform):
        name = key = type(step).__name__
        count = 1
        while key in found:
            count += 1
            key = f"{name}#{count}"
        found[key] = {arg: getattr(step, arg) for arg in step.get_transform_init_args_names()} | {"p": step.p}
    return found


def _steps(transform: A.BaseCompose | A.BasicTransform) -> Iterator[A.BasicTransform]:
    if isinstance(transform, A.BaseCompose):
        for child in transform.transforms:
            yield from _steps(child)
    else:
        yield transform


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: per-worker seeds for numpy, random and Albumentations; no OpenCV threads."""
    seed = torch.initial_seed()  # base seed + worker id; the base seed is drawn afresh for every epoch's workers
    np.random.seed(seed % 2**32)
    random.seed(seed)
    cv2.setNumThreads(0)  # each worker is one process already; OpenCV's pool would oversubscribe the cores
    worker = torch.utils.data.get_worker_info()
    for pipeline in _pipelines_of(worker.dataset if worker else None):
        reseed_pipeline(pipeline, seed)
        if isinstance(pipeline, WorkerSeededCompose):
            pipeline.worker_seed = worker.seed  # already seeded for this worker: no second re-seed on first call


def _pipelines_of(dataset: Any, depth: int = 3) -> Iterator[A.BaseCompose]:
    """Albumentations pipelines held by a dataset's attributes, looking through wrappers such as Subset."""
    if dataset is None or depth == 0:
        return
    for value in vars(dataset).values() if hasattr(dataset, "__dict__") else ():
        if isinstance(value, A.BaseCompose):
            yield value
        elif isinstance(value, torch.utils.data.Dataset):
            yield from _pipelines_of(value, depth - 1)


__all__ = [
    "WorkerSeededCompose",
    "build_eval_transform",
    "build_train_transform",
    "check_spec",
    "effective_parameters",
    "reseed_pipeline",
    "seed_worker",
]
