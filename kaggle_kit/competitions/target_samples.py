"""Generated downloads for targets other than one label per image, in the Kaggle shapes of kaggle-facts §10.

Label sets: the image is cut into one band per label, a band showing its label's colour and stripes when the
label is on and dark noise when off (RANZCR's one-hot columns, Plant Pathology 2021's space-separated sets).
Values and grades: the whole image's brightness follows where the value lies in its range (Pawpularity's
1-100 score, APTOS's grades 0-4). The zip holds train/, test/, the labels CSV and the sample submission;
answers.csv beside it holds the hidden test truths in the labels CSV's form.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import KitError
from .registry import Competition
from .samples import _class_image, _encode, _ids, _size, write_sample
from .targets import MultiLabel, TopK, target_of

TRAIN_IMAGES = 120


def _paint(rng: np.random.Generator, target, row, n_classes: int, height: int, width: int) -> np.ndarray:
    if isinstance(target, MultiLabel):
        image = rng.normal(40, 10, size=(height, width, 3))
        edges = np.linspace(0, height, n_classes + 1).astype(int)
        for label, on in enumerate(row):
            if on:
                band = _class_image(rng, label, n_classes, edges[label + 1] - edges[label], width)
                image[edges[label] : edges[label + 1]] = band
        return np.clip(image, 0, 255).astype(np.uint8)
    if isinstance(target, TopK):  # the class's own colour and stripes; a new class: unseen noise
        if row < n_classes:
            return _class_image(rng, int(row), n_classes, height, width)
        return np.clip(rng.normal(128, 60, size=(height, width, 3)), 0, 255).astype(np.uint8)
    level = 30 + 200 * target.fraction(row)
    yy = np.mgrid[0:height, 0:width][0].astype(np.float32)
    stripes = np.sin(yy * 2 * np.pi / 8 + rng.uniform(0, 2 * np.pi))[..., None]
    image = level * (0.85 + 0.15 * stripes) * np.ones((1, 1, 3)) + rng.normal(0, 8, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_target_sample(
    comp: Competition,
    out_dir: Path | str,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    nested: bool | None = None,
    top_folder: bool = False,
) -> Path:
    """`out_dir/<slug>.zip` and `out_dir/answers.csv` for `comp`'s target kind; returns the zip's path.
    `top_folder` wraps the zip's contents in one folder, as some mirrors do."""
    if nested:
        raise KitError(f"{comp.name}: --nested packs CIFAR-10's inner archives; a {comp.target} sample is flat")
    target = target_of(comp)
    classes = list(comp.declared_classes)
    if isinstance(target, (MultiLabel, TopK)) and not classes:
        raise KitError(f"{comp.name}: the declaration lists no labels (labels.classes): add them to generate a sample")
    if (n_train is not None and n_train < 4) or (n_test is not None and n_test < 1):
        raise KitError("--n-train takes at least 4 images and --n-test at least 1")
    rng = np.random.default_rng(seed)
    n_train = n_train or TRAIN_IMAGES
    n_test = n_test or max(n_train // 4, 4)
    ids = _ids(comp, rng, n_train + n_test)
    if comp.id_has_extension:  # Humpback's Image column: the file names themselves
        ids = [f"{i}{comp.image_ext}" for i in ids]
    train_ids, test_ids = ids[:n_train], ids[n_train:]
    truth = target.draw(rng, n_train + n_test, classes)
    ext = "" if comp.id_has_extension else comp.image_ext

    files: dict[str, bytes] = {}
    for folder, names, rows in (
        (comp.train_dir, train_ids, truth[:n_train]),
        (comp.test_dir, test_ids, truth[n_train:]),
    ):
        for name, row in zip(names, rows):
            image = _paint(rng, target, row, len(classes), *_size(comp, rng))
            files[f"{folder}/{name}{ext}"] = _encode(image, comp.image_ext)

    def frame(frame_ids, rows):
        return pd.DataFrame({comp.id_column: frame_ids, **target.label_frame(rows, classes, comp.label_column)})

    files[comp.label_file] = frame(train_ids, truth[:n_train]).to_csv(index=False).encode()
    sample = pd.DataFrame({comp.id_column: test_ids})
    for column, value in target.placeholder(classes, comp.label_column).items():
        sample[column] = value
    files[comp.sample_file] = sample.to_csv(index=False).encode()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / comp.archive_name
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(f"{comp.slug}/{name}" if top_folder else name, files[name])
    os.replace(tmp, zip_path)
    frame(test_ids, truth[n_train:]).to_csv(out_dir / "answers.csv", index=False)
    return zip_path


def write_any_sample(comp: Competition, out_dir: Path | str, **options) -> Path:
    """The generated download of any competition, by the writer its target kind names: one label a class's
    colour (competitions/samples), or truths the kind draws (write_target_sample)."""
    writers = {"classes": write_sample, "drawn": write_target_sample}
    return writers[target_of(comp).sample_writer](comp, out_dir, **options)
