"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The bytes go to a hidden temporary file beside the target, are flushed to disk, then renamed over it (rename is
atomic within one folder); a failure removes the temporary file and leaves the old version in place. A full disk
is one line naming the folder and the space the file needs (`faults.no_space_message`). Each write passes the
fault points of `core.faults`, where the fault-injection suite crashes it or fills the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import faults


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    number = faults.begin("atomic", path)
    try:
        with open(tmp, "wb") as handle:
            half = len(data) // 2
            handle.write(data[:half])
            faults.at(number, "partial", tmp, handle)
            handle.write(data[half:])
            handle.flush()
            os.fsync(handle.fileno())
        faults.at(number, "synced", tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        faults.raise_if_full(error, path, len(data))
        raise
    faults.at(number, "done", path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
