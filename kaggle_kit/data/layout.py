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

from ..competitions.registry import Competition
from ..core import archive
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..core.locks import exclusive
from .labels import is_image, label_indices, labels_from_csv, labels_from_file_names, labels_from_folders, order_classes
from .sample_submission import read_csv_cells, read_header_line, read_sample, sample_ids  # `layout.read_sample` too

UNPACK_MARKER = ".kaggle-kit-unpacked.json"
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def _entries(folder: Path, under: str = ""):
    """(relative name, stat) of every entry, sorted by name; class folders are entered (one level)."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir() and not under:
            yield from _entries(Path(entry.path), f"{entry.name}/")
        else:
            yield f"{under}{entry.name}", entry.stat()


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
                for name, st in _entries(self.source):
                    digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
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
    labels_path: Path  # the labels CSV, or the training folder when labels are folder or file names
    _fingerprint: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """A short hash of the labels, the sample submission and both image sets."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for path in (self.labels_path, self.sample_path):
                if path.is_file():  # labels in folders or file names: the image set's names carry them
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
            digest.update(self.train.fingerprint().encode())
            digest.update(self.test.fingerprint().encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.train_labels, minlength=len(self.classes))
        return dict(zip(self.classes, counts.tolist()))


# --------------------------------------------------------------------------------------- finding


def kaggle_input(slug: str) -> Path | None:
    """The competition's read-only input folder inside a Kaggle notebook (either of its mount points), or None."""
    for candidate in (KAGGLE_INPUT / slug, KAGGLE_INPUT / "competitions" / slug):
        if candidate.is_dir():
            return candidate
    return None


def default_data_dir(comp: Competition) -> Path:
    """`/kaggle/input/<slug>` inside a Kaggle notebook, else `data/<slug>`."""
    return kaggle_input(comp.slug) or Path("data") / comp.slug


def work_dir_for(comp: Competition, root: Path) -> Path:
    """Where caches go: beside the data when writable, else a writable work folder."""
    if _writable(root):
        return root / ".kaggle-kit"
    if KAGGLE_WORKING.is_dir() and os.access(KAGGLE_WORKING, os.W_OK):
        return KAGGLE_WORKING / ".kaggle-kit" / comp.slug
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kaggle-kit" / comp.slug


def _writable(folder: Path) -> bool:
    """Writable, and not marked read-only: root may write anywhere (a Kaggle notebook runs as root), but a folder
    whose mode grants nobody writing is an input to leave as it is."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


def _has_competition_files(folder: Path, comp: Competition) -> bool:
    names = (comp.sample_file, comp.label_file) if comp.labels_in_csv else (comp.sample_file,)
    return any((folder / name).exists() or (folder / f"{name}.zip").exists() for name in names)


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
            unpacked = json.loads(marker.read_text())
        except (OSError, ValueError):
            unpacked = {}  # an unreadable marker means: unpack again
        if unpacked == stamp:
            return
        if isinstance(unpacked, dict):
            _refuse_a_second_download(unpacked.get("archive"), zip_path, dest, comp)
    prefix = _zip_prefix(zip_path, comp)
    dest.mkdir(parents=True, exist_ok=True)
    # only the members of this download are replaced; the zip itself and caches stay
    archive.extract(zip_path, dest, strip_prefix=prefix)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, marker)


def _refuse_a_second_download(unpacked: str | None, zip_path: Path, dest: Path, comp: Competition) -> None:
    """Two downloads unpacked into one folder (the Kaggle client saves every zip in the current folder) would
    merge their train/ folders and overwrite each other's sample submission: each needs a folder of its own."""
    if unpacked and unpacked != zip_path.name and (dest / unpacked).is_file():
        own = dest / comp.slug
        raise KitError(
            f"{dest} already holds the unpacked {unpacked}: unpacking {zip_path.name} there would mix two downloads; "
            f"move it into a folder of its own (mkdir {own} && mv {zip_path} {own}/) and pass --data-dir {own}"
        )


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
    dest = folder if _writable(folder) else work_dir_for(comp, folder) / "unpacked"
    unpack_download(zip_path, dest, comp)
    return dest


# --------------------------------------------------------------------------------------- reading


def _nested(root: Path, comp: Competition, target: str) -> Path | None:
    for archive_name, what in comp.nested_archives.items():
        if what == target and (root / archive_name).is_file():
            return root / archive_name
    return None


def small_file(root: Path, comp: Competition, name: str, work_dir: Path) -> Path:
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


def folder_listing(folder: Path) -> tuple[set[str], set[str]]:
    """(files, folders) under `folder` as relative paths, one level of class folders deep."""
    files, folders = set(), set()
    for entry in os.scandir(folder):
        if entry.is_dir():
            folders.add(entry.name)
            files.update(f"{entry.name}/{inner.name}" for inner in os.scandir(entry.path) if inner.is_file())
        else:
            files.add(entry.name)
    return files, folders


def image_source(root: Path, comp: Competition, folder_name: str) -> tuple[Path, str, set[str], set[str]]:
    """Where a split's images live, the member prefix, and the file and folder names available there."""
    folder = root / folder_name
    if folder.is_dir():
        return folder, "", *folder_listing(folder)
    packed = _nested(root, comp, folder_name)
    if packed is None:
        raise KitError(
            f"{root}: neither a {folder_name}/ folder nor its archive is there; "
            f"the download is incomplete - run `kaggle-kit download {comp.name}` again"
        )
    if packed.suffix == ".7z":
        names = archive.sevenzip_names(packed)
    else:
        names = [i.filename for i in archive.zip_members(packed)]
    prefix = f"{folder_name}/"
    if not any(n.startswith(prefix) for n in names):
        prefixes = {n.rsplit("/", 1)[0] + "/" if "/" in n else "" for n in names if is_image(n)}
        prefix = prefixes.pop() if len(prefixes) == 1 else ""
    inside = [n[len(prefix) :] for n in names if n.startswith(prefix) and len(n) > len(prefix)]
    folders = {n.rstrip("/") for n in inside if n.endswith("/") and n.count("/") == 1}
    files = {n for n in inside if not n.endswith("/")}
    return packed, prefix, files, folders | {f.split("/")[0] for f in files if "/" in f}


def _missing_image_fix(file_name: str, names: set[str]) -> str:
    """What to do about a missing image: a name differing only in case (`.JPG`, copied through another system) is
    a rename away; anything else means the download is incomplete."""
    near = next((name for name in names if name.lower() == file_name.lower()), None)
    if near:
        ext = file_name[len(file_name.rsplit(".", 1)[0]) :]
        return f"{near} is there with other letter case: rename the files to lower-case {ext} as Kaggle ships them"
    return "download the competition again"


def sort_ids(ids: list[str], comp: Competition) -> list[str]:
    return sorted(ids, key=int) if comp.id_kind == "int" else sorted(ids)


def _train_labels(root: Path, comp: Competition, work_dir: Path, files: set[str], folders: set[str]):
    """(labels path or training folder, ids, label names) from the competition's label source."""
    if comp.labels_in_csv:
        labels_path = small_file(root, comp, comp.label_file, work_dir)
        return labels_path, *labels_from_csv(labels_path, comp)
    train_dir = root / comp.train_dir
    if comp.label_source == "folders":
        return train_dir, *labels_from_folders(train_dir, files, folders)
    return train_dir, *labels_from_file_names(train_dir, files)


def _check_images(source: Path, ids: list[str], ext: str, names: set[str], what: str) -> None:
    """Every id has its file: `what` says which ids ("labelled id", "test id of sample.csv")."""
    missing = [i for i in ids if f"{i}{ext}" not in names]
    if missing:
        kind, _, of = what.partition(" of ")
        raise KitError(
            f"{source}: no image for {kind} {missing[0]}{' of ' + of if of else ''} ({len(missing)} missing in all, "
            f"expected {missing[0]}{ext}); {_missing_image_fix(f'{missing[0]}{ext}', names)}"
        )


def listed_sample(root: Path, comp: Competition, work_dir: Path) -> Path:
    """The sample submission that lists the test images: the download's own, or where the declaration names a
    `test_file` (a code competition's sample holds a few placeholder rows; its test.csv lists the images), the
    sample's header with one row per test id, its values the sample's first row's, written to the work folder."""
    sample_path = small_file(root, comp, comp.sample_file, work_dir)
    if not comp.test_file:
        return sample_path
    tests = read_csv_cells(small_file(root, comp, comp.test_file, work_dir))
    if comp.id_column not in tests.columns:
        raise KitError(
            f"{comp.test_file}: no column {comp.id_column!r} listing the test images (columns: "
            f"{', '.join(tests.columns)}); fix test_file in the declaration, or run `kaggle-kit init` again"
        )
    sample = read_csv_cells(sample_path)
    header_line, terminator = read_header_line(sample_path)
    rows = sample.iloc[[0] * len(tests), 1:].reset_index(drop=True)
    rows.insert(0, sample.columns[0], tests[comp.id_column].to_numpy())
    body = rows.to_csv(header=False, index=False, lineterminator=terminator or "\n")
    listed = work_dir / "unpacked" / f"{Path(comp.sample_file).stem}.{Path(comp.test_file).stem}-ids.csv"
    text = header_line + (terminator or "\n") + body
    if not listed.is_file() or listed.read_text(encoding="utf-8") != text:
        listed.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(listed, text)
    return listed


def find_sample_path(comp: Competition, data_dir: Path | str | None = None) -> Path:
    """The sample submission of a data folder or download, without listing or reading any image.

    Unpacks the outer download zip once if that is what `data_dir` holds, and the sample's own nested
    zip if the download packs it; for checking a submission file against the sample cheaply.
    """
    root = find_root(comp, Path(data_dir) if data_dir else None)
    return listed_sample(root, comp, work_dir_for(comp, root))


def open_layout(comp: Competition, data_dir: Path | str | None = None) -> Layout:
    """Find, unpack (once) and read a competition's data folder, checking it against the declaration."""
    root = find_root(comp, Path(data_dir) if data_dir else None)
    work_dir = work_dir_for(comp, root)
    sample_path = listed_sample(root, comp, work_dir)
    sample = read_sample(sample_path, comp)  # header, blank, padded and repeated ids are checked there

    train_source, train_prefix, train_files, train_folders = image_source(root, comp, comp.train_dir)
    if comp.target != "label":  # label sets, values, grades: their target kind reads them (data/target_labels.py)
        from .target_labels import read_target_labels

        labels_path = small_file(root, comp, comp.label_file, work_dir)
        train_ids, classes, train_labels = read_target_labels(labels_path, comp, sample)
    else:
        labels_path, train_ids, names = _train_labels(root, comp, work_dir, train_files, train_folders)
        classes = order_classes(comp, sample, names)
        train_labels = label_indices(labels_path, comp, train_ids, names, classes)
    # ids read from a CSV name their file with or without its extension; ids from file names are the file names
    train_ext = comp.image_ext if comp.labels_in_csv and not comp.id_has_extension else ""
    _check_images(train_source, train_ids, train_ext, train_files, "labelled id")

    test_ids = sample_ids(sample, comp)
    test_ext = "" if comp.id_has_extension else comp.image_ext
    test_source, test_prefix, test_files, _ = image_source(root, comp, comp.test_dir)
    _check_images(test_source, test_ids, test_ext, test_files, f"test id of {comp.test_file or comp.sample_file}")
    return Layout(
        competition=comp,
        root=root,
        work_dir=work_dir,
        classes=classes,
        train=ImageSet(train_ids, train_source, train_prefix, train_ext),
        train_labels=train_labels,
        test=ImageSet(test_ids, test_source, test_prefix, test_ext),
        sample_path=sample_path,
        labels_path=labels_path,
    )
