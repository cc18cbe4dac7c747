"""Small generated datasets in each competition's exact Kaggle download layout.

`write_sample` writes `<slug>.zip` as the Kaggle client saves it (CIFAR-10's inner `train.7z` and
`test.7z`, the real file names and headers, ids of the real form) and, beside the zip, `answers.csv`
with the hidden test labels for local scoring. Classes are drawn so a small model learns them within
a minute on a CPU: each class has its own colour and stripe pattern, with noise on top.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .competition import Competition

DEFAULT_TRAIN_PER_CLASS = {"int": 60, "hex": 4}
JUNK_FRACTION = 0.2  # CIFAR-10's test set is mostly unscored junk; the sample keeps some


def _class_image(rng: np.random.Generator, cls: int, n_classes: int, height: int, width: int) -> np.ndarray:
    """An RGB image whose colour (cls mod 12) and stripe pattern (cls div 12) identify the class."""
    hue = (cls % 12) / 12.0
    base = np.array([np.sin(2 * np.pi * (hue + k / 3)) * 0.5 + 0.5 for k in range(3)]) * 200 + 25
    pattern = cls // 12
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.pi * (pattern % 5) / 5
    period = 6 + 4 * (pattern // 5) + rng.uniform(-1, 1)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period + phase)[..., None]
    image = base[None, None, :] * (0.75 + 0.25 * stripes)
    image = image * rng.uniform(0.8, 1.2) + rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encode(image: np.ndarray, ext: str) -> bytes:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, image[..., ::-1], params)
    assert ok
    return data.tobytes()


def _ids(comp: Competition, rng: np.random.Generator, n: int) -> list[str]:
    if comp.id_kind == "int":
        return [str(i) for i in range(1, n + 1)]
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(rng.bytes(16).hex())
    ordered = sorted(seen)  # a set's order depends on the process's hash seed: the same seed must give the same data
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _size(comp: Competition, rng: np.random.Generator) -> tuple[int, int]:
    if comp.native_size:
        return comp.native_size, comp.native_size
    # photos of varied size and aspect, like the real 500x375-ish JPEGs but small
    return int(rng.integers(72, 140)), int(rng.integers(80, 170))


def write_sample(
    comp: Competition,
    out_dir: Path | str,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    nested: bool | None = None,
    top_folder: bool = False,
) -> Path:
    """Write `out_dir/<slug>.zip` (the Kaggle download) and `out_dir/answers.csv`; return the zip's path.

    `nested` packs images in inner archives (CIFAR-10's real form; for Dog Breed, the older download);
    `top_folder` wraps the zip's contents in one folder, as some mirrors do.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = list(comp.declared_classes)
    n_classes = len(classes)
    n_train = n_train or DEFAULT_TRAIN_PER_CLASS[comp.id_kind] * n_classes
    n_test = n_test or max(n_classes, n_train // 5)
    nested = comp.images_packed if nested is None else nested

    train_ids = _ids(comp, rng, n_train)
    train_labels = np.arange(n_train) % n_classes
    rng.shuffle(train_labels)
    test_ids = _ids(comp, rng, n_test) if comp.id_kind == "hex" else [str(i) for i in range(1, n_test + 1)]
    if comp.id_kind == "hex":
        test_ids = [i for i in test_ids if i not in set(train_ids)]
    test_labels = rng.integers(0, n_classes, size=len(test_ids))
    scored = np.ones(len(test_ids), bool)
    if comp.submission_kind == "label":
        scored[rng.permutation(len(test_ids))[: int(JUNK_FRACTION * len(test_ids))]] = False

    def images(ids, labels):
        return {
            i: _encode(_class_image(rng, int(c), n_classes, *_size(comp, rng)), comp.image_ext)
            for i, c in zip(ids, labels)
        }

    files: dict[str, bytes] = {}
    label_csv = pd.DataFrame({comp.id_column: train_ids, comp.label_column: [classes[c] for c in train_labels]})
    files[comp.label_file] = label_csv.to_csv(index=False).encode()
    if comp.submission_kind == "label":
        sample = pd.DataFrame({comp.id_column: test_ids, comp.label_column: classes[0]})
        files[comp.sample_file] = sample.to_csv(index=False).encode()
    else:
        header = ",".join([comp.id_column, *classes])
        uniform = (
            ",".join(["0.00833333333333333"] * n_classes)
            if n_classes == 120
            else ",".join([repr(1 / n_classes)] * n_classes)
        )
        files[comp.sample_file] = (header + "\n" + "".join(f"{i},{uniform}\n" for i in test_ids)).encode()

    for folder, ids, labels in ((comp.train_dir, train_ids, train_labels), (comp.test_dir, test_ids, test_labels)):
        payload = images(ids, labels)
        if nested:
            inner = next(name for name, what in comp.nested_archives.items() if what == folder)
            files[inner] = _pack(inner, {f"{folder}/{i}{comp.image_ext}": data for i, data in payload.items()})
        else:
            files.update({f"{folder}/{i}{comp.image_ext}": data for i, data in payload.items()})
    if nested:
        for name in (comp.label_file, comp.sample_file):
            inner = f"{name}.zip"
            if comp.nested_archives.get(inner) == name:
                files[inner] = _pack(inner, {name: files.pop(name)})

    prefix = f"{comp.slug}/" if top_folder else ""
    zip_path = out_dir / comp.archive_name
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(prefix + name, files[name])
    os.replace(tmp, zip_path)

    answers = pd.DataFrame(
        {comp.id_column: np.array(test_ids)[scored], comp.label_column: [classes[c] for c in test_labels[scored]]}
    )
    answers.to_csv(out_dir / "answers.csv", index=False)
    return zip_path


def _pack(name: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    if name.endswith(".7z"):
        import py7zr

        with py7zr.SevenZipFile(buffer, "w") as archive:
            for member, data in members.items():
                archive.writestr(data, member)
    else:
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
            for member, data in members.items():
                zf.writestr(member, data)
    return buffer.getvalue()
