"""From a data folder, in whatever form the user has it, to a checked `Layout`.

Accepted forms: the raw download `<slug>.zip` (with or without a top-level folder inside), an unpacked
folder, nested archives inside it (CIFAR-10's `train.7z`/`test.7z`, old Dog downloads' `train.zip`,
`test.zip`, `labels.csv.zip`), and a read-only Kaggle notebook input `/kaggle/input/<slug>`. The outer
zip is unpacked once (a marker records which archive; re-running is a no-op). Image archives are not
unpacked at all: the cache reads them in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import archive
from .competition import Competition
from .errors import KitError
from .locks import exclusive
from .sample_submission import (
    read_sample,
    sample_classes,
    sample_ids,
)  # the one sample reader; `layout.read_sample` stays importable

UNPACK_MARKER = ".kaggle-kit-unpacked.json"
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


@dataclass
class ImageSet:
    """The images of one split: a folder of files, or an archive read in place."""

    ids: list[str]
    source: Path  # a folder, a .zip or a .7z
    prefix: str  # member prefix inside an archive, e.g. "train/"
    ext: str
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return {".zip": "zip", ".7z": "7z"}.get(self.source.suffix, "folder") if self.source.is_file() else "folder"

    def member(self, image_id: str) -> str:
        return f"{self.prefix}{image_id}{self.ext}"

    def path(self, image_id: str) -> Path:
        """A path to show the user (inside an archive it names the archive and member)."""
        if self.kind == "folder":
            return self.source / f"{image_id}{self.ext}"
        return Path(f"{self.source}:{self.member(image_id)}")

    def fingerprint(self) -> str:
        """Names and sizes of the files (or the archive's size and time) and the ids; computed once, since
        a 300,000-file folder takes a stat per file and the cache path and run config both ask."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            if self.kind == "folder":
                # the time too: an image replaced by one of the same byte size must not reuse the old pixels
                for entry in sorted(os.scandir(self.source), key=lambda e: e.name):
                    st = entry.stat()
                    digest.update(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            else:
                st = self.source.stat()
                digest.update(f"{self.source.name}:{st.st_size}:{st.st_mtime_ns}".encode())
            digest.update("\n".join(self.ids).encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint


@dataclass
class Layout:
    competition: Competition
    root: Path
    work_dir: Path
    classes: list[str]
    train: ImageSet
    train_labels: np.ndarray
    test: ImageSet
    sample_path: Path
    labels_path: Path
    _fingerprint: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """A short hash of the labels, the sample submission and both image sets."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for path in (self.labels_path, self.sample_path):
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            digest.update(self.train.fingerprint().encode())
            digest.update(self.test.fingerprint().encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.train_labels, minlength=len(self.classes))
        return dict(zip(self.classes, counts.tolist()))


# --------------------------------------------------------------------------------------- finding


def default_data_dir(comp: Competition) -> Path:
    """`/kaggle/input/<slug>` inside a Kaggle notebook, else `data/<slug>`."""
    for candidate in (KAGGLE_INPUT / comp.slug, KAGGLE_INPUT / "competitions" / comp.slug):
        if candidate.is_dir():
            return candidate
    return Path("data") / comp.slug


def work_dir_for(comp: Competition, root: Path) -> Path:
    """Where caches go: beside the data when writable, else a writable work folder."""
    if os.access(root, os.W_OK):
        return root / ".kaggle-kit"
    if KAGGLE_WORKING.is_dir() and os.access(KAGGLE_WORKING, os.W_OK):
        return KAGGLE_WORKING / ".kaggle-kit" / comp.slug
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kaggle-kit" / comp.slug


def _has_competition_files(folder: Path, comp: Competition) -> bool:
    return any(
        (folder / name).exists()
        for name in (comp.sample_file, f"{comp.sample_file}.zip", comp.label_file, f"{comp.label_file}.zip")
    )


def _download_zip(folder: Path, comp: Competition) -> Path | None:
    named = folder / comp.archive_name
    if named.is_file():
        return named
    zips = sorted(folder.glob("*.zip"))
    for candidate in zips:
        try:
            with zipfile.ZipFile(candidate) as zf:
                if any(n.rstrip("/").split("/")[-1] == comp.sample_file for n in zf.namelist()):
                    return candidate
        except zipfile.BadZipFile:
            continue
    return None


def _zip_prefix(path: Path, comp: Competition) -> str:
    """The top-level folder a download wraps its files in ('' when there is none)."""
    names = [i.filename for i in archive.zip_members(path)]
    for name in names:
        parts = name.split("/")
        if parts[-1] in (comp.sample_file, f"{comp.sample_file}.zip"):
            return "/".join(parts[:-1]) + "/" if len(parts) > 1 else ""
    raise KitError(
        f"{path}: has no {comp.sample_file}, so it is not the {comp.slug} download; "
        f"fetch it with `kaggle-kit download {comp.name}`"
    )


def unpack_download(zip_path: Path, dest: Path, comp: Competition) -> None:
    """Unpack the outer download zip into `dest` once; a marker makes re-running a no-op."""
    dest.mkdir(parents=True, exist_ok=True)
    with exclusive(dest / ".kaggle-kit.lock"):  # a second process waits, then finds the marker
        _unpack_once(zip_path, dest, comp)


def _unpack_once(zip_path: Path, dest: Path, comp: Competition) -> None:
    st = zip_path.stat()
    stamp = {"archive": zip_path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = dest / UNPACK_MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == stamp:
                return
        except (OSError, ValueError):
            pass  # an unreadable marker means: unpack again
    prefix = _zip_prefix(zip_path, comp)
    dest.mkdir(parents=True, exist_ok=True)
    # only the members of this download are replaced; the zip itself and caches stay
    archive.extract(zip_path, dest, strip_prefix=prefix)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, marker)


def find_root(comp: Competition, data_dir: Path | None) -> Path:
    """The folder holding the competition's files, unpacking the download zip if that is what we have."""
    data_dir = Path(data_dir) if data_dir else default_data_dir(comp)
    if data_dir.is_file() and data_dir.suffix == ".zip":
        zip_path, folder = data_dir, data_dir.parent
    elif data_dir.is_dir():
        zip_path, folder = None, data_dir
    elif data_dir.exists():
        raise KitError(f"--data-dir {data_dir} is a file: pass the {comp.slug} data folder or its {comp.archive_name}")
    else:
        raise KitError(
            f"data folder {data_dir} does not exist: run `kaggle-kit download {comp.name} --data-dir {data_dir}` "
            f"(or `kaggle-kit sample {comp.name} {data_dir}` for a small generated one)"
        )
    if zip_path is None:
        zip_path = _download_zip(folder, comp)
        if zip_path is None:
            if _has_competition_files(folder, comp):
                return folder
            subfolders = [p for p in folder.iterdir() if p.is_dir() and _has_competition_files(p, comp)]
            if len(subfolders) == 1:
                return subfolders[0]
            raise KitError(
                f"{folder}: holds neither {comp.archive_name} nor {comp.sample_file}; "
                f"run `kaggle-kit download {comp.name} --data-dir {folder}`"
            )
    dest = folder if os.access(folder, os.W_OK) else work_dir_for(comp, folder) / "unpacked"
    unpack_download(zip_path, dest, comp)
    return dest


# --------------------------------------------------------------------------------------- reading


def _nested(root: Path, comp: Competition, target: str) -> Path | None:
    for archive_name, what in comp.nested_archives.items():
        if what == target and (root / archive_name).is_file():
            return root / archive_name
    return None


def _small_file(root: Path, comp: Competition, name: str, work_dir: Path) -> Path:
    """A CSV that may come zipped (`labels.csv.zip`): unpacked once into the work folder."""
    direct = root / name
    if direct.is_file():
        return direct
    packed = _nested(root, comp, name)
    if packed is None:
        raise KitError(
            f"{root}: {name} is missing; the download is incomplete - run `kaggle-kit download {comp.name}` again"
        )
    target = work_dir / "unpacked" / name
    # the packed file's size and time, compared for equality: a replaced zip may carry an older time (cp -p, rsync)
    source_stamp = target.with_name(f"{name}.source")
    st = packed.stat()
    stamp = f"{packed.name}:{st.st_size}:{st.st_mtime_ns}"
    if not target.is_file() or not source_stamp.is_file() or source_stamp.read_text() != stamp:
        members = [i for i in archive.zip_members(packed) if i.filename.split("/")[-1] == name]
        if not members:
            raise KitError(f"{packed}: does not contain {name}; download the competition again")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")  # per process: two commands may open the data at once
        with zipfile.ZipFile(packed) as zf:
            tmp.write_bytes(zf.read(members[0]))
        os.replace(tmp, target)
        tmp.with_suffix(".stamp").write_text(stamp)
        os.replace(tmp.with_suffix(".stamp"), source_stamp)
    return target


def _image_source(root: Path, comp: Competition, folder_name: str) -> tuple[Path, str, set[str]]:
    """Where a split's images live and the set of member names available there."""
    folder = root / folder_name
    if folder.is_dir():
        return folder, "", {entry.name for entry in os.scandir(folder)}
    packed = _nested(root, comp, folder_name)
    if packed is None:
        raise KitError(
            f"{root}: neither a {folder_name}/ folder nor its archive is there; "
            f"the download is incomplete - run `kaggle-kit download {comp.name}` again"
        )
    names = (
        archive.sevenzip_names(packed) if packed.suffix == ".7z" else [i.filename for i in archive.zip_members(packed)]
    )
    prefixes = {n.rsplit("/", 1)[0] + "/" if "/" in n else "" for n in names if n.endswith(comp.image_ext)}
    prefix = f"{folder_name}/" if f"{folder_name}/" in prefixes else (prefixes.pop() if len(prefixes) == 1 else "")
    return packed, prefix, {n[len(prefix) :] for n in names if n.startswith(prefix)}


def _missing_image_fix(image_id: str, comp: Competition, names: set[str]) -> str:
    """What to do about a missing image: a name differing only in case (`.JPG`, copied through another system) is
    a rename away; anything else means the download is incomplete."""
    wanted = f"{image_id}{comp.image_ext}".lower()
    near = next((name for name in names if name.lower() == wanted), None)
    if near:
        return (
            f"{near} is there with other letter case: "
            f"rename the files to lower-case {comp.image_ext} as Kaggle ships them"
        )
    return "download the competition again"


def sort_ids(ids: list[str], comp: Competition) -> list[str]:
    return sorted(ids, key=int) if comp.id_kind == "int" else sorted(ids)


def _check_id(image_id: str, comp: Competition, where: str) -> None:
    if image_id != image_id.strip():
        # ids are matched as exact strings (file names, submission rows): a padded id matches nothing
        raise KitError(f"{where}: id {image_id!r} has spaces around it; remove them or download the file again")
    ok = (
        image_id.isdigit()
        if comp.id_kind == "int"
        else (len(image_id) > 0 and all(c in "0123456789abcdef" for c in image_id))
    )
    if not ok:
        kind = "an integer" if comp.id_kind == "int" else "a lowercase hex string"
        raise KitError(f"{where}: id '{image_id}' is not {kind}; fix that row or download the file again")


def read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise KitError(f"{path}: not a readable {what} CSV ({str(error).splitlines()[0]}); download it again") from None


def read_labels(path: Path, comp: Competition, classes: list[str]) -> tuple[list[str], np.ndarray]:
    labels = read_csv(path, "labels")
    expected = [comp.id_column, comp.label_column]
    missing = [c for c in expected if c not in labels.columns]
    if missing:
        raise KitError(
            f"{path}: column {missing[0]!r} is missing "
            f"(header is {','.join(labels.columns)}, expected {','.join(expected)}); "
            "download the labels file again"
        )
    ids = labels[comp.id_column].tolist()
    duplicated = labels[comp.id_column].duplicated()
    if duplicated.any():
        first = labels[comp.id_column][duplicated].iloc[0]
        raise KitError(f"{path}: id '{first}' appears more than once; keep one row per id")
    for image_id in ids:
        _check_id(image_id, comp, str(path))
    index = {name: i for i, name in enumerate(classes)}
    names = labels[comp.label_column]
    unknown = ~names.isin(index.keys())
    if unknown.any():
        row = labels[unknown].iloc[0]
        raise KitError(
            f"{path}: id {row[comp.id_column]} has label {row[comp.label_column]!r}, which is not one of the "
            f"{len(classes)} classes of {comp.slug}; fix that row (class names come from "
            f"{comp.sample_file if comp.class_source == 'sample_columns' else 'the competition'})"
        )
    order = np.argsort(np.array([int(i) for i in ids])) if comp.id_kind == "int" else np.argsort(np.array(ids))
    sorted_ids = [ids[i] for i in order]
    label_idx = names.map(index).to_numpy(dtype=np.int64)[order]
    return sorted_ids, label_idx


def find_sample_path(comp: Competition, data_dir: Path | str | None = None) -> Path:
    """The sample submission of a data folder or download, without listing or reading any image.

    Unpacks the outer download zip once if that is what `data_dir` holds, and the sample's own nested
    zip if the download packs it; for checking a submission file against the sample cheaply.
    """
    root = find_root(comp, Path(data_dir) if data_dir else None)
    return _small_file(root, comp, comp.sample_file, work_dir_for(comp, root))


def open_layout(comp: Competition, data_dir: Path | str | None = None) -> Layout:
    """Find, unpack (once) and read a competition's data folder, checking it against the declaration."""
    root = find_root(comp, Path(data_dir) if data_dir else None)
    work_dir = work_dir_for(comp, root)
    sample_path = _small_file(root, comp, comp.sample_file, work_dir)
    labels_path = _small_file(root, comp, comp.label_file, work_dir)
    sample = read_sample(sample_path, comp)  # header, blank, padded and repeated ids are checked there
    classes = sample_classes(sample, comp)
    train_ids, train_labels = read_labels(labels_path, comp, classes)

    train_source, train_prefix, train_names = _image_source(root, comp, comp.train_dir)
    missing = [i for i in train_ids if f"{i}{comp.image_ext}" not in train_names]
    if missing:
        raise KitError(
            f"{train_source}: no image for labelled id {missing[0]} ({len(missing)} missing in all, expected "
            f"{comp.train_dir}/{missing[0]}{comp.image_ext}); {_missing_image_fix(missing[0], comp, train_names)}"
        )
    test_ids = sample_ids(sample, comp)
    test_source, test_prefix, test_names = _image_source(root, comp, comp.test_dir)
    missing = [i for i in test_ids if f"{i}{comp.image_ext}" not in test_names]
    if missing:
        raise KitError(
            f"{test_source}: no image for test id {missing[0]} of {comp.sample_file} ({len(missing)} missing in all); "
            f"{_missing_image_fix(missing[0], comp, test_names)}"
        )
    return Layout(
        competition=comp,
        root=root,
        work_dir=work_dir,
        classes=classes,
        train=ImageSet(train_ids, train_source, train_prefix, comp.image_ext),
        train_labels=train_labels,
        test=ImageSet(test_ids, test_source, test_prefix, comp.image_ext),
        sample_path=sample_path,
        labels_path=labels_path,
    )
