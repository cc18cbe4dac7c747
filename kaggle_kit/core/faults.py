"""The fault points of every write a user keeps: one funnel, so the n-th write of any command can crash or find
the disk full, and a test can try every one of them.

Every writer of a kept file (`core.atomic`, the submission CSV's `atomic_output`, the ledger's append, the
image cache's build) announces each write with `begin(writer, path)` and passes its phases through `at`:
- `partial`: part of the bytes are in the temporary file (or, for an append, on the end of the file);
- `synced`: every byte is written and fsynced, not yet renamed into place;
- `done`: the file is in place.
A new writer joins the suite by calling these two functions: the suite counts writes from the log, it has
no list of its own (tests/core/test_write_faults.py fails on an `os.replace` outside a registered writer).

Driven by environment variables, so a test sets them on a child process running the real command:
- `KAGGLE_KIT_CRASH_AT_WRITE=N[:PHASE]`: at PHASE (default `partial`) of the N-th write the process ends at
  once with exit status 86 (`os._exit`: no cleanup, no `finally`, as a SIGKILL or a power cut would).
- `KAGGLE_KIT_ENOSPC_AT_WRITE=N`: the N-th write fails as a full disk does (`OSError(ENOSPC)`), at `partial`.
- `KAGGLE_KIT_WRITE_LOG=FILE`: one line per write appended to FILE: `N<TAB>writer<TAB>path`.
Unset (always, outside tests) each call costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import KitError

CRASH_ENV = "KAGGLE_KIT_CRASH_AT_WRITE"
ENOSPC_ENV = "KAGGLE_KIT_ENOSPC_AT_WRITE"
LOG_ENV = "KAGGLE_KIT_WRITE_LOG"
CRASH_EXIT = 86
PHASES = ("partial", "synced", "done")
WRITERS = ("atomic", "submission-csv", "ledger", "cache")  # every writer that calls `begin`

_count = 0


def injected() -> dict[str, str]:
    """The fault variables this process was given, for a task that runs in another process (a Ray task) to get too."""
    return {name: os.environ[name] for name in (CRASH_ENV, ENOSPC_ENV, LOG_ENV) if os.environ.get(name)}


def _target(name: str) -> tuple[int, str]:
    raw = os.environ.get(name, "")
    if not raw:
        return 0, ""
    number, _, phase = raw.partition(":")
    return int(number), phase or "partial"


def begin(writer: str, path: Path | str) -> int:
    """Number this process's next kept write (1, 2, ...) and log it when asked to."""
    global _count
    _count += 1
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as handle:  # test instrumentation, not a kept file
            handle.write(f"{_count}\t{writer}\t{path}\n")
    return _count


def at(number: int, phase: str, path: Path | str, handle=None) -> None:
    """Crash, or fail as a full disk, when this is the write and phase the environment asks for."""
    if not (os.environ.get(CRASH_ENV) or os.environ.get(ENOSPC_ENV)):
        return
    crash, crash_phase = _target(CRASH_ENV)
    if number == crash and phase == crash_phase:
        if handle is not None:
            handle.flush()  # what was written reaches the file, as it would before a kill
        os._exit(CRASH_EXIT)
    full, _ = _target(ENOSPC_ENV)
    if number == full and phase == "partial":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


class NoSpace(KitError):
    """A kept write found the disk full: a fault of the machine, not of the input, so a command that goes on to its
    next item (a tune worker's next trial) stops instead, and the item is tried again when space is freed."""


def raise_if_full(error: BaseException, path: Path | str, needed: int) -> None:
    """A full disk (ENOSPC) as one `NoSpace` line (`no_space_message`); anything else is left to the caller."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        raise NoSpace(no_space_message(Path(path), needed)) from None


def no_space_message(path: Path, needed: int) -> str:
    """One line for a full disk: the folder, the space the file needs, what is free, and that nothing was lost."""
    folder = Path(path).parent
    try:
        free = f", {_size(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = ""
    return (
        f"no space left in {folder} to write {Path(path).name} (needs {_size(needed)}{free}): free space there and "
        f"run the command again; the previous {Path(path).name}, if any, is unchanged"
    )


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
