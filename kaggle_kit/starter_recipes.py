"""The recipes `init` gives a new competition, chosen from its images.

Small fixed-size images (all one square size up to 64 px, like CIFAR-10's or Aerial Cactus's 32 px) train
from scratch with the CIFAR stem and the data's own mean/std, as CIFAR-10's fast recipe does; photos of varied
size fine-tune a pretrained ResNet as Dog Breed's best recipe does. Both get the augmentations `none` and `modern`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from . import archive
from .labels import is_image
from .layout import Layout
from .recipe import AugmentSpec, Recipe

SMALL_IMAGE = 64  # fixed-size images up to this side are trained from scratch with the CIFAR stem
PROBE = 32  # training images decoded to learn sizes and colour statistics


def probe(layout: Layout) -> tuple[list[tuple[int, int]], np.ndarray]:
    """(height, width) of the first training images and their pixels' per-channel mean and std (0..1)."""
    from .cache import decode

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
    """(recipes, augmentations, settings) chosen from the images: small fixed-size images train from scratch
    with the CIFAR stem (CIFAR-10's fast recipe), photos fine-tune a pretrained ResNet (Dog Breed's best)."""
    side = sizes[0][0] if sizes and all(s == sizes[0] for s in sizes) and sizes[0][0] == sizes[0][1] else None
    if side and side <= SMALL_IMAGE:
        augmentations = {
            "none": AugmentSpec(),
            "modern": AugmentSpec(translate=max(1, side // 8), hflip=True, cutout=max(2, side * 3 // 8)),
        }
        recipe = Recipe(
            name="scratch",
            arch="resnet18",
            stem="cifar",
            img_size=side,
            aug="modern",
            epochs=26,
            batch_size=512,
            optimizer="sgd",
            lr=0.2,
            momentum=0.9,
            nesterov=True,
            weight_decay=5e-4,
            schedule="onecycle",
            warmup_epochs=5,
            label_smoothing=0.2,
            tta="auto",
            lr_scaling="sqrt",
            normalize="dataset",
        )
        mean, std = (tuple(round(float(v), 4) for v in row) for row in mean_std)
        return {"scratch": recipe}, augmentations, {"native_size": side, "dataset_mean_std": (mean, std)}
    augmentations = {
        "none": AugmentSpec(),
        "modern": AugmentSpec(
            crop_scale=(0.25, 1.0), crop_ratio=(3 / 4, 4 / 3), hflip=True, brightness=0.2, contrast=0.2, saturation=0.2
        ),
    }
    recipe = Recipe(
        name="finetune",
        arch="resnet34",
        pretrained=True,
        freeze=True,
        unfreeze_after=2,
        head="linear",
        img_size=224,
        eval_resize=256,
        aug="modern",
        epochs=10,
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        schedule="cosine",
        warmup_epochs=1,
        tta="auto",
    )
    from_scratch = {"finetune": {"lr": 0.1, "weight_decay": 5e-4}}
    return {"finetune": recipe}, augmentations, {"from_scratch": from_scratch}
