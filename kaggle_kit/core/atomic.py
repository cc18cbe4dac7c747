"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The bytes go to a hidden temporary file beside the target, are flushed to disk, then renamed over it (rename is
atomic within one folder); a failure removes the temporary file and leaves the old version in place. A full disk
is one line naming the folder and the space the file needs (`faults.no_space_message`). Each write passes the
fault points of `core.faults`, where the fault-injection suite crashes it or fills the disk.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import faults


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path, "atomic") as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_output(path, writer: str = "atomic"):
    """A binary file that appears under `path` only once fully written and synced.

    The data goes to a hidden temporary file in the same folder (so the final rename never crosses
    file systems), is flushed and fsynced, then `os.replace`d over `path`. Any exception, including
    KeyboardInterrupt, removes the temporary file and leaves whatever was at `path` before untouched; a full
    disk is one line naming the folder and the space needed. `writer` names the write in the fault log.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False)
    temp = Path(handle.name)
    number = faults.begin(writer, path)
    try:
        with handle:
            yield handle
            faults.at(number, "partial", temp, handle)
            handle.flush()
            os.fsync(handle.fileno())
        faults.at(number, "synced", temp)
        # NamedTemporaryFile creates the file private (0600); a kept file gets the usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException as error:
        needed = temp.stat().st_size if temp.exists() else 0
        temp.unlink(missing_ok=True)
        faults.raise_if_full(error, path, needed)
        raise
    fsync_folder(path.parent)
    faults.at(number, "done", path)


def is_leftover(path: Path) -> bool:
    """A temporary file of a write that was killed before its rename (`atomic_output`'s): never a kept file, so a
    folder holding only these is as good as empty."""
    return path.name.startswith(".") and path.name.endswith(".partial")


def fsync_folder(folder: Path) -> None:
    # makes the rename itself durable; not every platform lets a folder be opened for this
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
