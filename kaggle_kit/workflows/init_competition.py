"""`kaggle-kit init`: a competition's declaration inferred from its download.

Reads the download as Kaggle's client saves it (the zip, nested archives inside, an unpacked folder,
`/kaggle/input/<slug>`) and works out, in order: the sample submission and its id column; the image
folders and their format; where the training labels are (a CSV keyed by id, class folders, file-name
prefixes); the classes; the submission form (a label, one probability per class, one probability of a
positive class); the image sizes and from them the recipes. The result is opened with `open_layout`
exactly as `train` will open it, so a declaration that `init` writes is one `train` can read.
Where the download cannot say, a one-line error names the flag that settles it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..competitions.declaration import dump
from ..competitions.metrics import Metric
from ..competitions.registry import Competition, declaration_folders, rediscover
from ..core import archive
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..data.groups import image_groups
from ..data.labels import IMAGE_EXTS, ONE_HOT_LABEL, is_image, label_of_file_name
from ..data.layout import (
    Layout,
    folder_listing,
    image_source,
    kaggle_input,
    open_layout,
    small_file,
    unpack_download,
    work_dir_for,
)
from ..data.sample_submission import read_csv_cells, short_header
from .init_features import declare_features, features_text
from .init_groups import find_groups, group_text
from .starter_recipes import probe, recipes_for

SAMPLE_NAME = re.compile(r"^sample.*\.csv$", re.IGNORECASE)
PROBABILITY_METRICS = ("log_loss", "auc")  # metrics that score a probability, so a two-class target is "binary"


@dataclass(frozen=True)
class Hints:
    """What the user settles with init's flags where the download cannot say (None: infer it)."""

    train_dir: str | None = None
    test_dir: str | None = None
    labels: str | None = None  # the labels CSV's file name
    id_column: str | None = None
    label_column: str | None = None
    group_column: str | None = None
    groups: str | None = None  # the CSV holding group_column, when it is not the labels CSV
    no_groups: bool = False
    features: tuple[str, ...] = ()  # the labels CSV's columns fed to the model beside the images (init_features)


@dataclass
class Inferred:
    """What `init` found, for the declaration and for the lines it prints."""

    competition: Competition
    layout: Layout
    sizes: list[tuple[int, int]]


# ------------------------------------------------------------------------------------------ the download


def _members(zip_path: Path) -> list[str]:
    return [i.filename for i in archive.zip_members(zip_path)]


def _sample_name(names: list[str], where: Path) -> str:
    found = sorted({n.rstrip("/").split("/")[-1].removesuffix(".zip") for n in names})
    found = [n for n in found if SAMPLE_NAME.match(n)]
    if not found:
        raise KitError(
            f"{where}: no sample submission (sample*.csv) in it, so the submission form cannot be told; "
            "pass --data-dir pointing at the competition's whole download"
        )
    return found[0]


def _provisional(slug: str, name: str, metric: Metric, sample_file: str, nested: dict[str, str]) -> Competition:
    """A declaration with only what is known so far; `infer` fills in the rest as it finds it."""
    return Competition(
        name=name,
        slug=slug,
        title=slug,
        aliases=(),
        label_file="",
        label_column="",
        sample_file=sample_file,
        id_kind="text",
        image_ext=".png",
        metric=metric,
        submission_kind="label",
        class_source="labels",
        recipes={},
        default_recipe="",
        augmentations={},
        nested_archives=nested,
        source="init",
    )


def find_download(slug: str, data_dir: Path | None) -> Path | None:
    """The download's zip or folder (the default place `train` looks, unless --data-dir says otherwise)."""
    candidates = [Path(data_dir)] if data_dir else [kaggle_input(slug), Path("data") / slug]
    path = next((c for c in candidates if c is not None and c.exists()), None)
    if path is not None and path.is_dir() and (path / f"{slug}.zip").is_file():
        return path / f"{slug}.zip"
    return path


def _fetch(slug: str, name: str, metric: Metric, data_dir: Path | None) -> Path:
    """A missing download fetched with the official client, when there are credentials to do it with."""
    from ..kaggle.api import credential_source, fetch

    target = Path(data_dir) if data_dir else Path("data") / slug
    if credential_source().kind == "none":
        raise KitError(
            f"no download of {slug} at {target}: pass --data-dir (the zip Kaggle's client saved, or its folder), or "
            "set up Kaggle credentials (`kaggle-kit doctor`) so init downloads it"
        )
    return fetch(_provisional(slug, name, metric, "", {}), target)


def _nested_archives(root: Path, slug: str) -> dict[str, str]:
    """Archives inside the download that stand in for a folder (`train.zip`) or a file (`labels.csv.zip`)."""
    nested = {}
    for packed in sorted([*root.glob("*.zip"), *root.glob("*.7z")]):
        if packed.name == f"{slug}.zip":  # the download itself, unpacked here
            continue
        stem = packed.name.rsplit(".", 1)[0]
        if stem.lower().endswith(".csv"):
            nested[packed.name] = stem
        elif not (root / stem).is_dir():
            names = archive.sevenzip_names(packed) if packed.suffix == ".7z" else _members(packed)
            if any(is_image(n) for n in names):
                nested[packed.name] = stem
    return nested


def open_download(slug: str, name: str, metric: Metric, data_dir: Path | None) -> tuple[Path, Competition]:
    """(root folder of the download, provisional declaration): the outer zip unpacked once as `train` would."""
    path = find_download(slug, data_dir) or _fetch(slug, name, metric, data_dir)
    if path.is_file() and path.suffix == ".zip":
        sample = _sample_name(_members(path), path)
        comp = _provisional(slug, name, metric, sample, {})
        unpack_download(path, path.parent, comp)
        root = path.parent
    elif path.is_dir():
        root = path
        sample = _sample_name([p.name for p in root.iterdir()], root)
    else:
        raise KitError(f"--data-dir {path} is neither a zip nor a folder: pass the download zip or its folder")
    return root, _provisional(slug, name, metric, sample, _nested_archives(root, slug))


# ------------------------------------------------------------------------------------------ image folders


def _image_folders(root: Path, comp: Competition) -> dict[str, tuple[set[str], set[str]]]:
    """Every folder (or archive standing in for one) holding images, directly or in class folders, at any depth
    (State Farm's `imgs/train/c0/`): relative name -> (files, folders) under it."""
    found = {}
    for packed in sorted(v for v in comp.nested_archives.values() if not v.lower().endswith(".csv")):
        if not (root / packed).is_dir():
            _, _, files, folders = image_source(root, comp, packed)
            if any(is_image(f) for f in files):
                found[packed] = (files, folders)
    _walk_folders(root, "", found, depth=3)
    return found


def _walk_folders(root: Path, prefix: str, found: dict, depth: int) -> None:
    for entry in sorted(p for p in (root / prefix).iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = f"{prefix}{entry.name}"
        files, folders = folder_listing(entry)
        # `imgs/` holding `train/` and `test/` is no folder of class folders: its splits lie one level down
        splits = any(re.match("train|test", f, re.IGNORECASE) for f in folders)
        if any(is_image(f) and ("/" not in f or not splits) for f in files):
            found[name] = (files, folders)
        elif depth > 1:
            _walk_folders(root, f"{name}/", found, depth - 1)


def _pick_folder(found: dict, word: str, root: Path, given: str | None, other: str | None = None) -> str:
    """The image folder named like `word` (its last part: `imgs/train`), or the one image folder there is (train
    and test images side by side, Plant Pathology 2020's `images/`), or what --train-dir / --test-dir says."""
    flag = f"--{word}-dir"
    if given is not None:
        if given.strip("/") not in found:
            raise KitError(f"{flag} {given}: no images in {root / given} (image folders found: {_listed(found)})")
        return given.strip("/")
    matches = [f for f in found if word in f.rsplit("/", 1)[-1].lower() and f != other]
    if not matches and len(found) == 1:
        return next(iter(found))
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)} ({', '.join(matches)})"
        raise KitError(
            f"{root}: {what} image folders named like {word}*/ (image folders found: {_listed(found)}); "
            f"pass {flag} FOLDER (relative to the download) to say which holds the {word} images"
        )
    return matches[0]


def _listed(found: dict) -> str:
    return ", ".join(f"{name}/" for name in found) or "none"


def _names_test_images(ids: list[str], files: set[str]) -> bool:
    """Each of the first ids names a test image, with or without its extension."""
    probe = [str(i) for i in ids[:20]]
    return bool(probe) and all(i in files or any(f"{i}{ext}" in files for ext in IMAGE_EXTS) for i in probe)


def _test_ids(root: Path, comp: Competition, ids: list[str], files: set[str]) -> Competition:
    """Where the test ids come from: the sample, unless a test CSV (test.csv) lists test images the sample does not
    (a code competition ships a sample of a few placeholder rows; Kaggle's rerun scores every test image)."""
    work_dir = work_dir_for(comp, root)
    for name in [n for n in _csvs(root, comp) if re.match("test", n, re.IGNORECASE)]:
        listed = read_csv_cells(small_file(root, comp, name, work_dir))
        if comp.id_column not in listed.columns:
            continue
        tests = listed[comp.id_column].tolist()
        if _names_test_images(tests, files) and (not _names_test_images(ids, files) or len(tests) > len(ids)):
            return replace(comp, test_file=name)
    return comp


def _test_files(comp: Competition, ids: list[str], files: set[str], test_dir: str) -> Competition:
    """Id form, whether ids carry the extension, and the image extension, from the sample's ids."""
    if ids and all(i.isdigit() for i in ids):
        kind = "int"
    elif ids and all(re.fullmatch(r"[0-9a-f]{8,}", i) for i in ids):
        kind = "hex"
    else:
        kind = "text"
    if all(is_image(i) for i in ids):
        ext = Counter(i[i.rfind(".") :] for i in ids).most_common(1)[0][0]
        return replace(comp, id_kind="text" if kind == "hex" else kind, id_has_extension=True, image_ext=ext)
    for ext in (*IMAGE_EXTS, *(e.upper() for e in IMAGE_EXTS)):
        if f"{ids[0]}{ext}" in files:
            return replace(comp, id_kind=kind, image_ext=ext)
    raise KitError(
        f"{test_dir}/: no image for the sample's first id {ids[0]!r} (looked for {ids[0]}.png, .jpg, ...) and no "
        f"test CSV lists the test images by {comp.id_column!r}; pass --data-dir pointing at the competition's whole "
        "download, or --test-dir naming the test images' folder"
    )


# ------------------------------------------------------------------------------------------ labels


def _csvs(root: Path, comp: Competition) -> list[str]:
    """The CSVs besides the sample, those named like labels (`trainLabels.csv`, `train.csv`) first."""
    names = {p.name for p in root.glob("*.csv")} | {v for v in comp.nested_archives.values() if v.endswith(".csv")}
    names.discard(comp.sample_file)
    return sorted(names, key=lambda n: (not re.search("label|train", n, re.IGNORECASE), n))


def _names_images(values: pd.Series, files: set[str], ext: str) -> bool:
    values = values.astype(str)
    if len(values) == 0 or values.duplicated().any():
        return False
    probe = values.head(20)
    return all(v in files or f"{v}{ext}" in files for v in probe)


def _labels_csv(root: Path, comp: Competition, train_files: set[str], sample_columns: list[str], hints: Hints):
    """(file name, label source, label column) of the CSV holding the training labels, or None when no CSV does."""
    work_dir = work_dir_for(comp, root)
    for name in [hints.labels] if hints.labels else _csvs(root, comp):
        frame = read_csv_cells(small_file(root, comp, name, work_dir))
        columns = list(frame.columns)
        if comp.id_column in columns and not _names_images(frame[comp.id_column], train_files, comp.image_ext):
            continue  # the test ids (test.csv, a local answers file), not the training labels
        if comp.id_column not in columns:
            candidates = [c for c in columns if _names_images(frame[c], train_files, comp.image_ext)]
            if len(candidates) > 1:
                raise KitError(
                    f"{name}: columns {', '.join(candidates)} could each be the image id and neither is the sample's "
                    f"'{comp.id_column}'; pass --id-column with the sample's id column, or rename it in {name}"
                )
            continue
        others = [c for c in columns if c != comp.id_column]
        found = _label_column(name, frame, others, sample_columns, hints)
        if found:
            return name, *found
    if hints.labels:
        raise KitError(
            f"--labels {hints.labels}: no column {comp.id_column!r} naming the training images, or no label column "
            f"(header {short_header(columns)}); pass --id-column and --label-column"
        )
    return None


def _label_column(name: str, frame: pd.DataFrame, others: list[str], sample_columns: list[str], hints: Hints):
    """(label source, column) among a labels CSV's columns besides the id: --label-column, the sample's
    prediction column, one-hot class columns (one 1 a row), the one column holding class names, or the only one."""
    if hints.label_column:
        if hints.label_column not in others:
            raise KitError(f"--label-column {hints.label_column}: not a column of the labels CSV ({', '.join(others)})")
        return "csv", hints.label_column
    classes = sample_columns[1:]
    if len(classes) > 1 and set(classes) <= set(others):
        values = frame[classes].apply(pd.to_numeric, errors="coerce")
        bad = ~values.isin([0, 1]).all(axis=1) | (values.sum(axis=1) != 1)
        if not bad.any():
            return "onehot", ONE_HOT_LABEL
        raise KitError(
            f"{name}: columns {', '.join(classes)} are the sample's classes, but row "
            f"{','.join(frame[bad].iloc[0].astype(str))} does not hold exactly one 1 ({int(bad.sum())} such): "
            "fix those rows, or pass --label-column naming a column of class names"
        )
    if len(sample_columns) == 2 and sample_columns[1] in others:
        return "csv", sample_columns[1]
    within = [c for c in others if set(frame[c]) <= set(classes)]
    if len(within) == 1:
        return "csv", within[0]
    if len(others) == 1:
        return "csv", others[0]
    return None


def _label_source(root, comp, train_dir, train_files, train_folders, sample_columns, hints) -> Competition:
    found = _labels_csv(root, comp, train_files, sample_columns, hints)
    if found:
        return replace(comp, label_source=found[1], label_file=found[0], label_column=found[2])
    column = sample_columns[1] if len(sample_columns) == 2 else "label"
    if any(f.count("/") == 1 and is_image(f) for f in train_files) or train_folders:
        return replace(comp, label_source="folders", label_column=column)
    flat = [f for f in train_files if is_image(f)]
    prefixes = {label_of_file_name(f) for f in flat}
    if flat and None not in prefixes and len(prefixes) >= 2:
        return replace(comp, label_source="filename", label_column=column)
    raise KitError(
        f"{root}: no labels found - no CSV ({', '.join(_csvs(root, comp)) or 'none'}) has the sample's id column "
        f"'{comp.id_column}' naming images in {train_dir}/, which has no class folders and whose file names carry no "
        "label prefix (cat.1.jpg); pass --labels CSV with --id-column and --label-column"
    )


# ------------------------------------------------------------------------------------------ submission form


def _is_fraction(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.notna().all() and ((numbers % 1) != 0).any())


def _submission_form(comp: Competition, sample: pd.DataFrame, classes: list[str], positive: str | None):
    columns = list(sample.columns)
    if len(columns) > 2:
        if set(columns[1:]) != set(classes):
            raise KitError(
                f"{comp.sample_file}: header {short_header(columns)} is no submission form kaggle-kit knows: its "
                f"columns are not the {len(classes)} training classes ({', '.join(classes[:4])}...); "
                "pass --data-dir pointing at the competition's own download"
            )
        return replace(comp, submission_kind="probabilities", class_source="sample_columns")
    probability = _is_fraction(sample[columns[1]]) or comp.metric.name in PROBABILITY_METRICS
    if len(classes) != 2 or not probability:
        if comp.metric.name in PROBABILITY_METRICS:
            # one label per row for more than two classes: the metric would score one-hot rows (~34.5 a miss)
            raise KitError(
                f"--metric {comp.metric.key} scores probabilities, but {comp.sample_file} has one label per row "
                f"(column {columns[1]!r}, {len(classes)} classes): check the competition's evaluation metric "
                "(accuracy, f1-micro, f1-macro or qwk score labels)"
            )
        return replace(comp, submission_kind="label", class_source="labels", label_column=columns[1])
    if positive is None:
        positive = "1" if classes == ["0", "1"] else columns[1] if columns[1] in classes else None
    if positive not in classes:
        raise KitError(
            f"{comp.sample_file}: column {columns[1]!r} holds one probability, and the download cannot say of "
            f"which class; pass --positive {' or --positive '.join(classes)}"
        )
    return replace(
        comp, submission_kind="binary", class_source="labels", label_column=columns[1], positive_class=positive
    )


# ------------------------------------------------------------------------------------------ inference


def resolve_metric(slug: str, name: str | None) -> Metric:
    """--metric by name; without it, Kaggle's evaluation metric for `slug` (credentials and network needed)."""
    from ..competitions.target_metrics import target_metric_by_name as metric_by_name  # label and other targets
    from ..kaggle.api import credential_source, evaluation_metric

    if name:
        return metric_by_name(name)
    if credential_source().kind == "none":
        raise KitError(
            f"the evaluation metric of {slug} cannot be read offline: pass --metric "
            "(accuracy, logloss, auc, f1-micro, f1-macro, qwk, or Kaggle's name for it)"
        )
    return metric_by_name(evaluation_metric(slug))


def infer(
    slug: str,
    metric: Metric,
    data_dir: Path | None = None,
    name: str | None = None,
    positive: str | None = None,
    hints: Hints = Hints(),
    target: str | None = None,
    k: int | None = None,
) -> Inferred:
    """The declaration of `slug` from its download, checked by opening it as `train` will; `hints` settle what
    the download cannot say. `target`: the target kind (label, multilabel, regression, ordinal, topk); None reads
    it from the files."""
    name = name or slug.replace("-", "_")
    root, comp = open_download(slug, name, metric, data_dir)
    sample = read_csv_cells(small_file(root, comp, comp.sample_file, work_dir_for(comp, root)))
    columns = [str(c) for c in sample.columns]
    if len(columns) < 2:
        raise KitError(
            f"{comp.sample_file}: header {short_header(columns)} has no prediction column, so no submission form "
            "explains it; pass --data-dir pointing at the competition's own download"
        )
    if hints.id_column and hints.id_column != columns[0]:
        raise KitError(
            f"--id-column {hints.id_column}: {comp.sample_file} keys its rows by {columns[0]!r}, and a submission's "
            f"ids are the sample's: rename the labels CSV's id column to {columns[0]!r}"
        )
    comp = replace(comp, id_column=columns[0])

    folders = _image_folders(root, comp)
    train_dir = _pick_folder(folders, "train", root, hints.train_dir)
    test_dir = _pick_folder(folders, "test", root, hints.test_dir, other=train_dir)
    comp = replace(comp, train_dir=train_dir, test_dir=test_dir)
    comp = _test_ids(root, comp, sample[columns[0]].tolist(), folders[test_dir][0])
    listed = (
        read_csv_cells(small_file(root, comp, comp.test_file, work_dir_for(comp, root))) if comp.test_file else sample
    )
    comp = _test_files(comp, listed[columns[0]].tolist(), folders[test_dir][0], test_dir)
    from .init_targets import infer_target  # label sets, values, grades (workflows/init_targets)

    targeted = infer_target(root, comp, sample, metric, target, k)
    if targeted is not None:
        comp, layout, sizes = targeted
        return Inferred(declare_features(layout, comp, hints.features), layout, sizes)
    comp = _label_source(root, comp, train_dir, *folders[train_dir], columns, hints)
    comp = find_groups(root, comp, folders[train_dir][0], hints.group_column, hints.groups, hints.no_groups)

    kind = "probabilities" if len(columns) > 2 else "label"  # for now only the header's check: the form comes next
    provisional = open_layout(replace(comp, class_source="labels", submission_kind=kind), root)
    comp = _submission_form(comp, sample, provisional.classes, positive)
    misfit = comp.metric_misfit(metric, provisional.classes)
    if misfit:  # QWK on breeds or species: the declaration would score an order the classes do not have
        fits = ", ".join(comp.fitting_metrics(provisional.classes))
        raise KitError(f"--metric {metric.key}: {misfit}; pass --metric with one that fits: {fits}")
    sizes, mean_std = probe(provisional)
    recipes, augmentations, settings = recipes_for(sizes, mean_std)
    comp = replace(
        comp,
        recipes=recipes,
        default_recipe=next(iter(recipes)),
        augmentations=augmentations,
        images_packed=any(v in (train_dir, test_dir) for v in comp.nested_archives.values()),
        **settings,
    )
    layout = open_layout(comp, root)  # exactly as `train` will read it
    comp = replace(comp, declared_classes=tuple(layout.classes))  # what `sample` draws, what `validate` checks
    return Inferred(declare_features(layout, comp, hints.features), layout, sizes)


# ------------------------------------------------------------------------------------------ what init says


def _size_text(sizes) -> str:
    if not sizes:
        return "unknown"
    heights, widths = [s[0] for s in sizes], [s[1] for s in sizes]
    if len(set(sizes)) == 1:
        return f"{widths[0]}x{heights[0]}, all alike (first {len(sizes)} looked at)"
    return f"{min(widths)}-{max(widths)} wide, {min(heights)}-{max(heights)} high (first {len(sizes)} looked at)"


def _labels_text(comp: Competition) -> str:
    if comp.label_source == "onehot":
        return f"{comp.label_file}, one 0/1 column per class (exactly one 1 a row) keyed by {comp.id_column!r}"
    if comp.label_source == "csv":
        extension = "with" if comp.id_has_extension else "without"
        return (
            f"{comp.label_file}, column {comp.label_column!r} keyed by {comp.id_column!r} (ids {extension} the "
            f"file extension)"
        )
    if comp.label_source == "folders":
        return f"one folder per class under {comp.train_dir}/"
    return f"the file name's prefix in {comp.train_dir}/ (like {comp.declared_classes[0]}.1{comp.image_ext})"


def _submission_text(comp: Competition) -> str:
    if comp.submission_kind == "probabilities":
        return f"one probability column per class ({comp.id_column} + {len(comp.declared_classes)} columns)"
    if comp.submission_kind == "binary":
        return f"one probability column {comp.label_column!r}: the probability of class {comp.positive_class!r}"
    grades = all(c.isdigit() for c in comp.declared_classes)
    return f"one label per row in column {comp.label_column!r} ({'an integer grade' if grades else 'a class name'})"


def _recipe_text(comp: Competition) -> str:
    recipe = comp.recipe()
    if recipe.pretrained:
        return f"{recipe.name}: pretrained {recipe.arch} fine-tuned at {recipe.img_size}px (photos of varied size)"
    return (
        f"{recipe.name}: {recipe.arch} from scratch at {recipe.img_size}px ({recipe.optimizer} lr {recipe.lr:g}, "
        f"{recipe.schedule}, batch {recipe.batch_size}, {recipe.epochs} epochs), dataset mean/std"
    )


def _shared(comp: Competition) -> str:
    if comp.train_dir != comp.test_dir:
        return ""
    return f", one folder: training ids from {comp.label_file}, test ids from {comp.test_file or comp.sample_file}"


def _listed_by(comp: Competition) -> str:
    if not comp.test_file:
        return ""
    return f"; {comp.sample_file} does not list the test images, so submissions hold one row per {comp.test_file} id"


def describe(found: Inferred) -> list[str]:
    """What `init` inferred, one line each."""
    return _described(found) + [features_text(found.layout, found.competition)]


def _described(found: Inferred) -> list[str]:
    comp, layout = found.competition, found.layout
    if comp.target != "label":  # label sets, values, grades: described by workflows/init_targets
        from .init_targets import describe_target

        return describe_target(comp, layout, found.sizes)
    formats = Counter(i[i.rfind(".") :].lower() for i in (f"{x}{layout.train.ext}" for x in layout.train.ids))
    counts = layout.class_counts()
    return [
        f"images: {comp.train_dir}/ ({len(layout.train.ids)}, {layout.train.kind}) and {comp.test_dir}/ "
        f"({len(layout.test.ids)}, {layout.test.kind}){_shared(comp)}; formats {', '.join(sorted(formats))}",
        f"labels: {_labels_text(comp)}",
        group_text(comp, image_groups(layout)),
        f"classes ({len(counts)}): " + ", ".join(f"{name} {count}" for name, count in counts.items()),
        f"ids: {comp.id_kind}, in {comp.test_file or comp.sample_file} order (column {comp.id_column!r})"
        + _listed_by(comp),
        f"submission: {_submission_text(comp)}",
        f"metric: {comp.metric.label} - {comp.metric.direction}",
        f"image sizes: {_size_text(found.sizes)}",
        f"recipe: {_recipe_text(comp)}; augmentations {', '.join(comp.augmentations)}",
    ]


def write_declaration(comp: Competition, out: Path | None) -> Path:
    """The declaration as TOML at `out`, or in the user's competitions folder where `resolve` finds it."""
    if out is None:
        folder = dict(declaration_folders())["user"]
        out = folder / f"{comp.name}.toml"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(out), dump(comp))
    rediscover()
    return Path(out)
