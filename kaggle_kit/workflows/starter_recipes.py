"""The recipes `init` gives a new competition, chosen from its images.

Small fixed-size images (all one square size up to 64 px, like CIFAR-10's or Aerial Cactus's 32 px) train
from scratch with the CIFAR stem and the data's own mean/std, as CIFAR-10's fast recipe does; photos of varied
size fine-tune a pretrained ResNet as Dog Breed's best recipe does. Both get the augmentations `none` and `modern`.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config.recipe import AugmentSpec, Recipe
from ..core import archive
from ..data.labels import is_image
from ..data.layout import Layout

SMALL_IMAGE = 96  # images up to this side train from scratch: fine-tuning needs weights a notebook may lack
# The from-scratch recipe for small images is the loop a competitor would write by hand (timm resnet18, AdamW lr
# 2e-3 wd 0.05, one-cycle, batch 64, no augmentation): measured against exactly that loop in
# benchmarks/bench_scratch.py, where CIFAR-10's shipped fast recipe (SGD, 3x3 stem) lost on a few hundred images.
SCRATCH = dict(
    arch="resnet18", pretrained=False, stem="imagenet", optimizer="adamw", lr=2e-3, weight_decay=0.05,
    schedule="onecycle", batch_size=64, aug="none", epochs=15, normalize="dataset", freeze=False, unfreeze_after=None,
)  # fmt: skip
PROBE = 32  # training images decoded to learn sizes and colour statistics


def probe(layout: Layout) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(height, width) of the first training images and their pixels' per-channel mean and std (0..1)."""
    from ..data.cache import decode

    images = layout.train
    ids = images.ids[:: max(1, len(images.ids) // PROBE)][:PROBE]
    if images.kind == "folder":
        payloads = [(images.source / f"{i}{images.ext}").read_bytes() for i in ids]
    elif images.kind == "zip":
        with zipfile.ZipFile(images.source) as zf:
            payloads = [zf.read(images.member(i)) for i in ids]
    else:
        payloads = _first_7z_images(images.source)
    decoded = [d for d in (decode(p, None, None) for p in payloads) if d is not None]
    pixels = np.concatenate([d.reshape(-1, 3) for d in decoded]).astype(np.float64) / 255
    return [d.shape[:2] for d in decoded], np.stack([pixels.mean(axis=0), pixels.std(axis=0)])


class _Enough(Exception):
    """Raised from the 7z stream's callback once the probe has its images: a solid archive is not read to the end."""


def _first_7z_images(source: Path) -> list[bytes]:
    payloads: list[bytes] = []

    def take(member: str, data: bytes) -> None:
        if is_image(member):
            payloads.append(data)
        if len(payloads) >= PROBE:
            raise _Enough

    try:
        archive.stream_7z(source, take)
    except _Enough:
        pass
    return payloads


def recipes_for(sizes, mean_std) -> tuple[dict, dict, dict]:
    """(recipes, augmentations, settings) chosen from the images: small images (up to SMALL_IMAGE on their longer
    side) train from scratch as a bare loop would, normalised by the data's own statistics; photos fine-tune a
    pretrained ResNet (Dog Breed's best)."""
    square = sizes[0][0] if sizes and all(s == sizes[0] for s in sizes) and sizes[0][0] == sizes[0][1] else None
    longest = max((max(h, w) for h, w in sizes), default=None)
    if longest and longest <= SMALL_IMAGE:
        side = square or int(8 * round(float(np.median([max(h, w) for h, w in sizes])) / 8))
        augmentations = {
            "none": AugmentSpec(),
            "modern": AugmentSpec(translate=max(1, side // 8), hflip=True, cutout=max(2, side * 3 // 8)),
        }
        recipe = Recipe(name="scratch", img_size=side, **SCRATCH)
        mean, std = (tuple(round(float(v), 4) for v in row) for row in mean_std)
        settings = {"dataset_mean_std": (mean, std)} | ({"native_size": side} if square else {})
        return {"scratch": recipe}, augmentations, settings
    dog = _shipped("dog_breed")  # Dog Breed's best recipe and its augmentations as shipped
    augmentations = {"none": dog.augmentation("none"), "modern": dog.augmentation("modern")}
    recipe = replace(dog.recipe("best"), name="finetune")
    from_scratch = {"finetune": {"lr": 0.1, "weight_decay": 5e-4}}
    return {"finetune": recipe}, augmentations, {"from_scratch": from_scratch}


def _shipped(name: str):
    """A built-in declaration as shipped, never a user's override of it: what a new competition starts from."""
    from ..competitions.declaration import DECLARATION_FILE, load
    from ..competitions.registry import declaration_folders

    return load(dict(declaration_folders())["built-in"] / name / DECLARATION_FILE, source="built-in")
