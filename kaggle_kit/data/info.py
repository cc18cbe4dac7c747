"""A plain-text description of a data folder: counts, classes, image sizes, cache state."""

from __future__ import annotations

import numpy as np

from .cache import cache_dir, open_cache
from .layout import ImageSet, Layout

PROBE = 32  # images decoded to describe sizes when no cache exists yet


def _probe_sizes(images: ImageSet) -> list[tuple[int, int]]:
    import cv2

    from ..core import archive

    ids = images.ids[:PROBE]
    if images.kind == "folder":
        payloads = [(images.source / f"{i}{images.ext}").read_bytes() for i in ids]
    elif images.kind == "zip":
        payloads = [data for _, data in archive.iter_zip_members(images.source, [images.member(i) for i in ids])]
    else:
        return []  # a solid 7z would have to be decompressed: sizes come with the cache
    sizes = []
    for data in payloads:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is not None:
            sizes.append(image.shape[:2])
    return sizes


def _size_summary(sizes, declared: int | None = None) -> str:
    if not len(sizes):
        # a solid 7z (CIFAR-10's) is not decompressed to look; the competition declares its images' size
        return f"{declared}x{declared} (declared)" if declared else "unknown until cached"
    sizes = np.asarray(sizes)
    heights, widths = sizes[:, 0], sizes[:, 1]
    if (heights == heights[0]).all() and (widths == widths[0]).all():
        return f"{widths[0]}x{heights[0]}"
    return f"{widths.min()}-{widths.max()} wide, {heights.min()}-{heights.max()} high"


def _caches(layout: Layout, split: str) -> list[str]:
    folder = cache_dir(layout, split, None).parent
    if not folder.is_dir():
        return []
    images = layout.train if split == "train" else layout.test
    lines = []
    for path in sorted(folder.glob(f"{split}-*-{images.fingerprint()}")):
        cache = open_cache(path)
        if cache:
            lines.append(
                f"{path.name} ({len(cache)} images, {cache.nbytes() / 1e6:.1f} MB, {len(cache.bad_ids)} undecodable)"
            )
    return lines


def _truths(layout: Layout) -> tuple[str, str]:
    """(the train line's tail, the line of counts) for the competition's target kind: classes for one label,
    images holding each label of a set, each grade's images, a ranking's classes and new class, a value's range."""
    comp, truth = layout.competition, np.asarray(layout.train_labels)
    if comp.target == "label":
        counts = layout.class_counts()
        return (
            f"{len(layout.classes)} classes, {min(counts.values())}-{max(counts.values())} per class",
            "classes: " + ", ".join(f"{name} {count}" for name, count in counts.items()),
        )
    if comp.target == "regression":
        return f"values {truth.min():g}..{truth.max():g}", f"values: mean {truth.mean():.4g}, std {truth.std():.4g}"
    if truth.ndim == 2:  # a label set a row, multi-hot
        names, counts = layout.classes, truth.sum(axis=0)
        what = f"{len(names)} labels, {truth.sum(axis=1).mean():.2f} a row"
    else:  # grades, or a ranking's classes with the new class last
        names = [*layout.classes, comp.new_class] if comp.target == "topk" and comp.new_class else layout.classes
        counts = np.bincount(truth.astype(np.int64), minlength=len(names))
        what = f"{len(layout.classes)} {'grades' if comp.target == 'ordinal' else 'classes'}"
    return what, f"images holding each ({comp.target}): " + ", ".join(f"{n} {int(c)}" for n, c in zip(names, counts))


def describe(layout: Layout) -> str:
    comp = layout.competition
    spread, counts = _truths(layout)
    lines = [
        f"{comp.title} ({comp.slug})",
        f"data: {layout.root}",
        f"metric: {comp.metric.label} - {comp.metric.direction}",
        f"train: {len(layout.train.ids)} images in {layout.train.source.name} ({layout.train.kind}), {spread}",
        f"test: {len(layout.test.ids)} images in {layout.test.source.name} ({layout.test.kind}), "
        f"in {layout.sample_path.name} order",
        f"train image sizes: {_size_summary(_probe_sizes(layout.train), comp.native_size)} (first {PROBE})",
        counts,
    ]
    for split in ("train", "test"):
        caches = _caches(layout, split)
        lines.append(
            f"{split} cache: " + ("; ".join(caches) if caches else "not built yet (built on first train/predict)")
        )
    lines.append(f"fingerprint: {layout.fingerprint()}")
    return "\n".join(lines)
