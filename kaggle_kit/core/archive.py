"""Safe reading and extraction of the zip and 7z archives Kaggle hands out.

Every member is checked before anything is written: no absolute paths, no `..`, no links, and an
unpacked size that is plausible for the compressed size (a zip bomb is refused, not unpacked).
Extraction goes to a temporary sibling folder that is renamed into place when complete, so an
interrupted unpack is never mistaken for a finished one.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from .errors import KitError

# Images and CSVs compress at most ~10x; 1000x over a gigabyte is a bomb, not a dataset.
MAX_EXPANSION = 1000
STAGING = ".kaggle-kit-unpacking"
BOMB_FLOOR_BYTES = 1 << 30


def _check_member_name(archive: Path, name: str) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise KitError(
            f"{archive}: member '{name}' would land outside the target folder; "
            "refusing to unpack - delete it and download it again"
        )


def _check_expansion(archive: Path, packed: int, unpacked: int) -> None:
    if unpacked > BOMB_FLOOR_BYTES and unpacked > MAX_EXPANSION * max(packed, 1):
        raise KitError(
            f"{archive}: would unpack {unpacked / 1e9:.1f} GB from {packed / 1e6:.1f} MB, which no image "
            "dataset does; refusing to unpack - delete it and download it again"
        )


def check_free_space(folder: Path, needed: int, doing: str = "unpacking") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise KitError(
            f"{folder}: {doing} needs {needed / 1e9:.2f} GB but only {free / 1e9:.2f} GB is free; "
            "free some space or pass --data-dir on a larger disk"
        )


def zip_members(path: Path) -> list[zipfile.ZipInfo]:
    """The checked member list of a zip file, with a clear error for a damaged one."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise KitError(f"{path}: not a readable zip file ({error}); delete it and download again") from None
    for info in infos:
        _check_member_name(path, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise KitError(
                f"{path}: member '{info.filename}' is a link; refusing to unpack - delete it and download it again"
            )
    _check_expansion(path, sum(i.compress_size for i in infos), sum(i.file_size for i in infos))
    return infos


def sevenzip_names(path: Path) -> list[str]:
    import py7zr

    try:
        with py7zr.SevenZipFile(path, "r") as archive:
            infos = archive.list()
    except (py7zr.exceptions.Bad7zFile, OSError, EOFError, KeyError, ValueError) as error:
        raise KitError(f"{path}: not a readable 7z archive ({error}); delete it and download again") from None
    return _checked_7z_names(path, infos)


def _checked_7z_names(path: Path, infos) -> list[str]:
    names = []
    for info in infos:
        _check_member_name(path, info.filename)
        if getattr(info, "is_symlink", False):
            raise KitError(
                f"{path}: member '{info.filename}' is a link; refusing to unpack - delete it and download it again"
            )
        if not info.is_directory:
            names.append(info.filename)
    _check_expansion(path, path.stat().st_size, sum(i.uncompressed or 0 for i in infos))
    return names


def extract(path: Path, dest: Path, strip_prefix: str = "") -> None:
    """Unpack `path` (zip or 7z) into `dest`, atomically: all of it appears, or none of it.

    `strip_prefix` drops a top-level folder some downloads wrap their files in.
    """
    # inside the target when it exists (the download's own folder), else beside it
    staging = dest / STAGING if dest.is_dir() else dest.parent / f".{dest.name}{STAGING}"
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted unpack: redo, never half-use
    staging.mkdir(parents=True)
    try:
        if path.suffix == ".7z":
            _extract_7z(path, staging)
        else:
            _extract_zip(path, staging, strip_prefix)
        if dest.exists():
            # merge into an existing folder (the download's root), member by member
            for item in staging.iterdir():
                target = dest / item.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
                os.replace(item, target)
            staging.rmdir()
        else:
            os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_zip(path: Path, staging: Path, strip_prefix: str) -> None:
    infos = zip_members(path)
    check_free_space(staging, sum(i.file_size for i in infos))
    with zipfile.ZipFile(path) as zf:
        for info in infos:
            name = info.filename
            if strip_prefix and name.startswith(strip_prefix):
                name = name[len(strip_prefix) :]
            if not name:
                continue
            if info.is_dir():  # kept: an empty class folder is a fault the layout reader must see and name
                (staging / name).mkdir(parents=True, exist_ok=True)
                continue
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (zipfile.BadZipFile, EOFError, zlib_error()) as error:
                raise KitError(
                    f"{path}: member '{info.filename}' is damaged ({error}); delete the archive and download again"
                ) from None
            # the member's own time, not the unpacking's: a nested archive's stamp is part of the data fingerprint,
            # so unpacking the same download again must not make its runs look trained on other data
            stamp = time.mktime(info.date_time + (0, 0, -1))
            os.utime(target, (stamp, stamp))


def zlib_error():
    import zlib

    return zlib.error


def _extract_7z(path: Path, staging: Path) -> None:
    import py7zr

    sevenzip_names(path)  # checks every member before anything is written
    try:
        with py7zr.SevenZipFile(path, "r") as archive:
            check_free_space(staging, sum(i.uncompressed or 0 for i in archive.list()))
            archive.extractall(path=staging)
    except (py7zr.exceptions.Bad7zFile, py7zr.exceptions.CrcError, EOFError, ValueError, lzma.LZMAError) as error:
        raise KitError(f"{path}: damaged 7z archive ({error}); delete it and download again") from None


def iter_zip_members(path: Path, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the named members, read straight from the zip without unpacking."""
    zip_members(path)
    with zipfile.ZipFile(path) as zf:
        for name in names:
            try:
                yield name, zf.read(name)
            except KeyError:
                raise KitError(
                    f"{path}: has no member '{name}'; the archive is incomplete - download it again"
                ) from None
            except (zipfile.BadZipFile, EOFError, zlib_error()) as error:
                raise KitError(f"{path}: member '{name}' is damaged ({error}); download the archive again") from None


STREAM_BLOCK = 4 << 20  # bytes decompressed per call when streaming a 7z archive's members


def stream_7z(path: Path, on_member: Callable[[str, bytes], None]) -> None:
    """Decompress a 7z archive member by member, handing each payload to `on_member`; nothing touches disk.

    The archive is opened once: its listing is checked (names, links, expansion), then each folder's
    stream is decompressed in 4 MiB blocks and cut into members by their sizes, with each member's CRC
    checked. Why not py7zr's own `extract` with a writer factory: it costs ~0.4 ms of Python per member
    (a memory probe through psutil, path checks), several times the decompression itself for CIFAR-10's
    300,000 small PNGs. Archives this path does not handle (encrypted, several pack streams per folder)
    go through py7zr's `extract`.
    """
    import lzma

    import py7zr

    try:
        with py7zr.SevenZipFile(path, "r") as archive:
            _checked_7z_names(path, archive.list())
            if not _stream_folders(path, archive, on_member):
                archive.reset()
                archive.extract(targets=None, factory=_member_factory(on_member))
    except (py7zr.exceptions.Bad7zFile, py7zr.exceptions.CrcError, lzma.LZMAError, EOFError, ValueError) as error:
        raise KitError(f"{path}: damaged 7z archive ({error}); delete it and download again") from None


def _stream_folders(path: Path, archive, on_member: Callable[[str, bytes], None]) -> bool:
    """Members of every folder of an open py7zr archive, in archive order; False (nothing emitted) when the
    archive's structure needs py7zr's general path."""
    import zlib

    streams = getattr(archive.header, "main_streams", None)
    if streams is None or archive.password_protected:
        return False
    folders, pack = streams.unpackinfo.folders, streams.packinfo
    if len(pack.packsizes) != len(folders) or not hasattr(archive, "afterheader"):
        return False  # a folder fed by several pack streams (BCJ2): positions are not one per folder
    for member in archive.files:
        if member.emptystream and not member.is_directory:
            on_member(member.filename, b"")
    fp = archive.fp
    for index, folder in enumerate(folders):
        fp.seek(archive.afterheader + pack.packpositions[index])
        decompressor = folder.get_decompressor(pack.packsizes[index], reset=True)
        block, offset = b"", 0
        for member in folder.files or []:
            size = member.uncompressed
            while len(block) - offset < size:
                position = fp.tell()
                chunk = decompressor.decompress(fp, max(STREAM_BLOCK, size))
                if not chunk and fp.tell() == position:
                    raise KitError(
                        f"{path}: member '{member.filename}' is cut short; delete the archive and download again"
                    )
                block, offset = block[offset:] + chunk, 0
            data = block[offset : offset + size]
            offset += size
            if member.crc32 is not None and zlib.crc32(data) != member.crc32:
                raise KitError(
                    f"{path}: member '{member.filename}' fails its CRC check; delete the archive and download again"
                )
            if not member.is_directory:
                on_member(member.filename, data)
        if decompressor.crc is not None and not decompressor.check_crc():
            raise KitError(f"{path}: a packed stream fails its CRC check; delete the archive and download again")
    return True


def _member_factory(on_member: Callable[[str, bytes], None]):
    """A py7zr writer factory that hands each extracted member's bytes to `on_member` (the general path)."""
    from py7zr.io import Py7zIO, WriterFactory

    class _Member(Py7zIO):
        def __init__(self, name: str):
            self.name = name
            self.buffer = bytearray()

        def write(self, s):
            self.buffer += s
            return len(s)

        def read(self, size=None):
            return bytes(self.buffer)

        def seek(self, offset, whence=0):
            return 0

        def flush(self):
            return None

        def size(self):
            return len(self.buffer)

        def close(self):
            on_member(self.name, bytes(self.buffer))
            self.buffer = bytearray()

    class _Factory(WriterFactory):
        def create(self, filename):
            return _Member(filename)

    return _Factory()
