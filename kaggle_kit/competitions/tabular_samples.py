"""Generated downloads of images with tabular columns beside them, in the Kaggle shapes of kaggle-facts §10, whose
answer depends partly on the image and partly on the columns (so a model reading both can beat one reading either).

- PetFinder Pawpularity (a regression target): `train.csv` `Id,<12 photo flags>,Pawpularity`, `test.csv` `Id,<flags>`,
  `sample_submission.csv` `Id,Pawpularity`. The score is 40% the image's brightness and 60% three of the flags.
- SIIM-ISIC melanoma (a two-class target scored by AUC): `train.csv` `image_name,patient_id,sex,age_approx,
  anatom_site_general_challenge,diagnosis,benign_malignant,target` with blank cells, several images a patient,
  `test.csv` the same up to the site, `sample_submission.csv` `image_name,target`. An image is malignant when it
  shows the malignant pattern (a fifth of them), or when the lesion is on the head/neck or oral/genital site or
  the patient is 80 or older (about two fifths).

Which columns exist follows the declaration's `features`: `sex`, `age_approx` and `anatom_site_general_challenge`
are drawn as SIIM-ISIC's (with blanks); any other feature is a 0/1 flag, the first three of them carrying signal.
answers.csv beside the zip holds the hidden test truths in the labels CSV's form.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import KitError
from .registry import Competition
from .samples import _class_image, _encode, _ids, _size
from .target_samples import _paint
from .targets import Regression, target_of

SITES = ("torso", "lower extremity", "upper extremity", "head/neck", "palms/soles", "oral/genital")
RISKY_SITES = {"head/neck", "oral/genital"}
SIGNAL_FLAGS = 3  # flags that move the answer; the rest are noise, as most of Pawpularity's are
TRAIN_IMAGES = 160


def _blank(rng: np.random.Generator, values: list, share: float) -> list:
    return ["" if rng.random() < share else v for v in values]


def draw_features(rng: np.random.Generator, features: tuple[str, ...], n: int) -> tuple[dict[str, list], np.ndarray]:
    """(the columns' cells, each row's tabular signal 0..1): what the answer's tabular part follows."""
    columns, signals = {}, []
    flags = [f for f in features if f not in ("sex", "age_approx", "anatom_site_general_challenge")]
    age = rng.choice(np.arange(15, 91, 5), n)
    site = rng.choice(SITES, n)
    if "sex" in features:
        columns["sex"] = _blank(rng, list(rng.choice(["male", "female"], n)), 0.03)
    if "age_approx" in features:
        columns["age_approx"] = _blank(rng, [f"{a:.1f}" for a in age], 0.05)
    if "anatom_site_general_challenge" in features:
        columns["anatom_site_general_challenge"] = _blank(rng, list(site), 0.05)
    if {"age_approx", "anatom_site_general_challenge"} <= set(features):
        signals.append(((age >= 80) | np.isin(site, list(RISKY_SITES))).astype(float))
    for k, name in enumerate(flags):
        values = (rng.random(n) < 0.5).astype(int)
        columns[name] = values.tolist()
        if k < SIGNAL_FLAGS:
            signals.append(values.astype(float))
    if not signals:
        raise KitError(
            "a tabular sample needs a 0/1 flag feature or both age_approx and anatom_site_general_challenge: "
            "declare them in features"
        )
    return columns, np.mean(signals, axis=0)


def write_tabular_sample(
    comp: Competition,
    out_dir: Path | str,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    nested: bool | None = None,
    top_folder: bool = False,
) -> Path:
    """`out_dir/<slug>.zip` and `out_dir/answers.csv` for a competition with tabular `features`."""
    target = target_of(comp)
    two_classes = comp.target == "label" and len(comp.declared_classes) == 2
    if nested or not (isinstance(target, Regression) and comp.target == "regression" or two_classes):
        raise KitError(
            f"{comp.name}: tabular samples are generated flat, for a regression or a two-class target "
            f"(not {comp.target} with {len(comp.declared_classes)} classes)"
        )
    if (n_train is not None and n_train < 8) or (n_test is not None and n_test < 1):
        raise KitError("--n-train takes at least 8 images and --n-test at least 1")
    rng = np.random.default_rng(seed)
    n_train = n_train or TRAIN_IMAGES
    n_test = n_test or max(n_train // 4, 4)
    n = n_train + n_test
    ids = _ids(comp, rng, n)
    columns, signal = draw_features(rng, comp.features, n)
    if two_classes:  # malignant by the image's pattern, or by the columns
        shown = (rng.random(n) < 0.2).astype(int)
        answer = np.maximum(shown, (signal >= 0.5).astype(int))
        images = [_class_image(rng, int(s), 2, *_size(comp, rng)) for s in shown]
        truth = [comp.declared_classes[a] for a in answer]
    else:
        low, high = comp.value_range or (1.0, 100.0)
        brightness = rng.random(n)
        answer = np.round(low + (high - low) * (0.4 * brightness + 0.6 * signal))
        images = [_paint(rng, target, low + (high - low) * b, 0, *_size(comp, rng)) for b in brightness]
        truth = [int(a) for a in answer]
    folders = [comp.train_dir] * n_train + [comp.test_dir] * n_test
    files = {f"{d}/{i}{comp.image_ext}": _encode(image, comp.image_ext) for d, i, image in zip(folders, ids, images)}
    table = pd.DataFrame({comp.id_column: ids, **columns})
    if comp.group_column:  # a few images a patient, as SIIM-ISIC's
        table.insert(1, comp.group_column, [f"IP_{k:07d}" for k in rng.integers(0, max(n // 4, 2), n)])
    train = table.iloc[:n_train].assign(**{comp.label_column: truth[:n_train]})
    if two_classes:
        train = train.assign(
            diagnosis=["melanoma" if t == comp.positive_class else "unknown" for t in truth[:n_train]],
            benign_malignant=["malignant" if t == comp.positive_class else "benign" for t in truth[:n_train]],
        )
        train = train[[c for c in train.columns if c != comp.label_column] + [comp.label_column]]
    files[comp.label_file] = train.to_csv(index=False).encode()
    files[comp.test_table] = table.iloc[n_train:].to_csv(index=False).encode()
    placeholder = 0.0 if two_classes else target.placeholder([], comp.label_column)[comp.label_column]
    sample = pd.DataFrame({comp.id_column: ids[n_train:], comp.label_column: placeholder})
    files[comp.sample_file] = sample.to_csv(index=False).encode()
    return _write(comp, Path(out_dir), files, top_folder, ids[n_train:], truth[n_train:])


def _write(comp: Competition, out_dir: Path, files: dict[str, bytes], top_folder: bool, test_ids, answers) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / comp.archive_name
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            zf.writestr(f"{comp.slug}/{name}" if top_folder else name, files[name])
    os.replace(tmp, zip_path)
    pd.DataFrame({comp.id_column: test_ids, comp.label_column: answers}).to_csv(out_dir / "answers.csv", index=False)
    return zip_path
