"""File locks, so processes sharing a data folder (DDP ranks, a download and a submit, two trainings) work on it
one at a time where they must: `exclusive` around an unpack or a cache build (the second one then finds the work
done); `InUse` / `unused` mark a cache a process reads, so another never removes it from under it."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path


def _open(lock_path: Path) -> int:
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def exclusive(lock_path: Path):
    fd = _open(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class InUse:
    """A shared lock held while this process reads what `lock_path` guards: released by `release()`, or by the
    operating system when the process ends, however it ends (a killed run never leaves a stale mark)."""

    def __init__(self, lock_path: Path):
        self._fd: int | None = _open(lock_path)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits while another process removes it (it then finds it gone)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __del__(self) -> None:
        self.release()


@contextmanager
def unused(lock_path: Path):
    """Yields True, holding the lock exclusively, when no process holds `InUse(lock_path)`; else yields False at
    once. Removing what the lock guards inside the block is safe: a reader arriving meanwhile waits, then finds it
    gone."""
    fd = _open(lock_path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class SoleWriter:
    """The folder `folder` (made if missing) held exclusively while this process writes `what`, until `release()`
    (or the process ends, however it ends); a second writer is refused at once, in one line. The lock is on the
    folder's own descriptor, so no lock file is left beside it or in it."""

    def __init__(self, folder: Path, what: str):
        from .errors import KitError

        self._fd: int | None = None  # a folder that cannot be made leaves nothing for __del__ to release
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise KitError(
                f"{what} is being written by another kaggle-kit process right now: wait for it to finish, "
                "or write to another folder"
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()
