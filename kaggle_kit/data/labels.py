"""Training labels from wherever a competition writes them, and the class order the model outputs.

Three sources (`Competition.label_source`): a CSV keyed by id (CIFAR-10, Dog Breed, APTOS), one folder per
class (Plant Seedlings: `train/Black-grass/abc.png`), or the file name's prefix (Dogs vs. Cats:
`train/cat.123.jpg`). For the last two a training id is the image's path under the training folder
(`Black-grass/abc.png`, `cat.123.jpg`), so the id names its file exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions.registry import Competition
from ..core.errors import KitError
from .sample_submission import quoted_examples

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)


def numeric_order(names) -> list[str]:
    """Class names sorted: numerically when every name is an integer (grades 0..4, 10 after 9), else as text."""
    names = sorted(set(names))
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return names


def check_id(image_id: str, comp: Competition, where: str) -> None:
    if not image_id:
        raise KitError(f"{where}: an id is blank; fix that row or download the file again")
    if image_id != image_id.strip():
        # ids are matched as exact strings (file names, submission rows): a padded id matches nothing
        raise KitError(f"{where}: id {image_id!r} has spaces around it; remove them or download the file again")
    if comp.id_kind == "text":
        return
    ok = image_id.isdigit() if comp.id_kind == "int" else all(c in "0123456789abcdef" for c in image_id)
    if not ok:
        kind = "an integer" if comp.id_kind == "int" else "a lowercase hex string"
        raise KitError(f"{where}: id '{image_id}' is not {kind}; fix that row or download the file again")


def read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise KitError(f"{path}: not a readable {what} CSV ({str(error).splitlines()[0]}); download it again") from None


def labels_from_csv(path: Path, comp: Competition) -> tuple[list[str], list[str]]:
    """(ids, label names) of a labels CSV, ids sorted (numerically for integer ids)."""
    labels = read_csv(path, "labels")
    if comp.label_source == "onehot":
        labels = one_hot_labels(labels, comp, path)
    expected = [comp.id_column, ONE_HOT_LABEL if comp.label_source == "onehot" else comp.label_column]
    missing = [c for c in expected if c not in labels.columns]
    if missing:
        raise KitError(
            f"{path}: column {missing[0]!r} is missing "
            f"(header is {','.join(labels.columns)}, expected {','.join(expected)}); "
            "download the labels file again"
        )
    duplicated = labels[comp.id_column].duplicated()
    if duplicated.any():
        first = labels[comp.id_column][duplicated].iloc[0]
        raise KitError(f"{path}: id '{first}' appears more than once; keep one row per id")
    ids = labels[comp.id_column].tolist()
    for image_id in ids:
        check_id(image_id, comp, str(path))
    names = labels[expected[1]].tolist()
    order = np.argsort(np.array([int(i) for i in ids])) if comp.id_kind == "int" else np.argsort(np.array(ids))
    return [ids[i] for i in order], [names[i] for i in order]


ONE_HOT_LABEL = "label"  # the column one-hot rows are read into


def one_hot_labels(table: pd.DataFrame, comp: Competition, path: Path) -> pd.DataFrame:
    """`id,healthy,rust,...` rows with exactly one 1 each (Plant Pathology 2020) as `id,label`: one label per
    image, the one column holding 1. Every column but the id (and a group column) is a class."""
    if comp.id_column not in table.columns:
        return table  # the caller names the missing column
    classes = [c for c in table.columns if c not in (comp.id_column, comp.group_column)]
    values = table[classes].apply(pd.to_numeric, errors="coerce")
    bad = ~values.isin([0, 1]).all(axis=1) | (values.sum(axis=1) != 1)
    if not classes or bad.any():
        row = table[bad].iloc[0] if bad.any() else None
        shown = ",".join(str(v) for v in row) if row is not None else ",".join(table.columns)
        raise KitError(
            f"{path}: one-hot labels need exactly one 1 a row over the class columns {', '.join(classes) or '(none)'}; "
            f'row {shown!r} is not ({int(bad.sum())} such): fix those rows, or declare labels.source = "csv"'
        )
    chosen = values.to_numpy().argmax(axis=1)
    return pd.DataFrame({comp.id_column: table[comp.id_column], ONE_HOT_LABEL: [classes[i] for i in chosen]})


def labels_from_folders(train_dir: Path | str, files: set[str], folders: set[str]) -> tuple[list[str], list[str]]:
    """(ids, label names) of `train/<class>/<file>`: `files` and `folders` are paths under the training folder."""
    loose = sorted(f for f in files if "/" not in f and is_image(f))
    if loose:
        raise KitError(
            f"{train_dir}: image {loose[0]} is not inside a class folder ({len(loose)} such); move each image into "
            "the folder named after its class, or set label_source in the declaration"
        )
    ids = sorted(f for f in files if f.count("/") == 1 and is_image(f))
    if not ids:
        raise KitError(
            f"{train_dir}: no class folders with images found; pass --data-dir pointing at the download, "
            "or set label_source (csv, folders, filename) in the declaration"
        )
    used = {i.split("/")[0] for i in ids}
    empty = sorted(f for f in folders if "/" not in f and f not in used)
    if empty:
        raise KitError(
            f"{train_dir}/{empty[0]}: class folder is empty; put its images in or remove the folder "
            f"({len(empty)} empty in all)"
        )
    return ids, [i.split("/")[0] for i in ids]


def label_of_file_name(name: str) -> str | None:
    """`cat.123.jpg` -> `cat`; `dog_7.png` -> `dog`; None when the stem has no prefix."""
    stem = name.rsplit(".", 1)[0]
    for separator in (".", "_"):
        if separator in stem:
            return stem.split(separator, 1)[0] or None
    return None


def labels_from_file_names(train_dir: Path | str, files: set[str]) -> tuple[list[str], list[str]]:
    """(ids, label names) of `train/<label>.<n>.<ext>`."""
    ids = sorted(f for f in files if "/" not in f and is_image(f))
    if not ids:
        raise KitError(f"{train_dir}: no images found; point --data-dir at the download")
    names = [label_of_file_name(i) for i in ids]
    unlabelled = [i for i, n in zip(ids, names) if n is None]
    if unlabelled:
        raise KitError(
            f"{train_dir}/{unlabelled[0]}: the file name carries no label prefix (like cat.123.jpg) "
            f"({len(unlabelled)} such); set label_source in the declaration to csv or folders"
        )
    return ids, names


def order_classes(comp: Competition, sample: pd.DataFrame, names: list[str]) -> list[str]:
    """The classes in model-output order: the sample's columns (Dog Breed: always take the order from the
    sample itself), the declared labels (CIFAR-10), or the training labels' own names."""
    if comp.class_source == "sample_columns":
        return [str(c) for c in sample.columns[1:]]
    if comp.class_source == "declared":
        return list(comp.declared_classes)
    classes = numeric_order(names)
    if comp.submission_kind == "binary":
        if len(classes) != 2:
            raise KitError(
                f"{comp.name}: a binary submission needs two classes, the training labels hold {len(classes)} "
                f"({quoted_examples(classes)}); set submission_kind in the declaration"
            )
        if comp.positive_class not in classes:
            raise KitError(
                f"{comp.name}: positive_class {comp.positive_class!r} is not one of the classes "
                f"{quoted_examples(classes)}; set positive_class in the declaration (or `init --positive`)"
            )
    return classes


def label_indices(where: Path | str, comp: Competition, ids: list[str], names: list[str], classes: list[str]):
    """Class indices (np.int64) of `names`; an unknown label names its row and where classes come from."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = [(i, n) for i, n in zip(ids, names) if n not in index]
    if unknown:
        image_id, name = unknown[0]
        source = {"sample_columns": comp.sample_file, "declared": "the declaration"}.get(comp.class_source, "labels")
        raise KitError(
            f"{where}: id {image_id} has label {name!r}, which is not one of the {len(classes)} classes of "
            f"{comp.slug}; fix that row (class names come from {source})"
        )
    return np.array([index[n] for n in names], dtype=np.int64)
