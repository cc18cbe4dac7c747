"""Progress bars with an ETA, shown at the edges (CLI) and silent inside library calls and tests.

`bar(total, description)` is a context manager whose `advance(n)` moves the bar; when progress is
off it costs nothing. On a terminal it draws a rich bar; in a Jupyter notebook tqdm's notebook bar (plain lines
without tqdm and ipywidgets); elsewhere (logs, CI) it prints a plain line about every 10% with rate and ETA.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

_enabled = False


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def _fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class _Bar:
    def __init__(self, total: int | None, description: str):
        self.total = total
        self.description = description
        self.done = 0
        self.start = time.perf_counter()
        self.postfix = ""

    def advance(self, n: int = 1, postfix: str = "") -> None:
        self.done += n
        if postfix:
            self.postfix = postfix

    @property
    def eta(self) -> float | None:
        elapsed = time.perf_counter() - self.start
        if not self.total or not self.done:
            return None
        return elapsed / self.done * (self.total - self.done)


class _Quiet(_Bar):
    pass


class _Lines(_Bar):
    def __init__(self, total, description):
        super().__init__(total, description)
        self.next_mark = 0.1

    def advance(self, n: int = 1, postfix: str = "") -> None:
        super().advance(n, postfix)
        if self.total and self.done / self.total >= self.next_mark:
            self.next_mark = int(self.done / self.total * 10 + 1) / 10
            elapsed = time.perf_counter() - self.start
            rate = self.done / max(elapsed, 1e-9)
            print(
                f"{self.description}: {self.done}/{self.total} {rate:,.1f}/s eta {_fmt(self.eta or 0)} {self.postfix}",
                file=sys.stderr,
                flush=True,
            )


class _Rich(_Bar):
    def __init__(self, total, description):
        super().__init__(total, description)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[postfix]}"),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, postfix="")

    def advance(self, n: int = 1, postfix: str = "") -> None:
        super().advance(n, postfix)
        self._progress.update(self._task, advance=n, postfix=self.postfix)

    def close(self) -> None:
        self._progress.stop()


class _Notebook(_Bar):
    """tqdm's widget bar, redrawn in place in a Jupyter cell (where stderr is no TTY)."""

    def __init__(self, total, description):
        super().__init__(total, description)
        from tqdm.notebook import tqdm

        self._tqdm = tqdm(total=total, desc=description, leave=False)

    def advance(self, n: int = 1, postfix: str = "") -> None:
        super().advance(n, postfix)
        if postfix:
            self._tqdm.set_postfix_str(postfix, refresh=False)
        self._tqdm.update(n)

    def close(self) -> None:
        self._tqdm.close()


def in_notebook() -> bool:
    """True inside a Jupyter kernel. IPython is only asked when something already imported it: a plain
    interpreter never pays for the import."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def notebook_bar_available() -> bool:
    """tqdm's notebook bar needs ipywidgets; without it a notebook gets the plain lines."""
    try:
        import ipywidgets  # noqa: F401
        import tqdm.notebook  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def bar(total: int | None, description: str):
    if not _enabled:
        yield _Quiet(total, description)
        return
    if sys.stderr.isatty():
        b = _Rich(total, description)
    elif in_notebook() and notebook_bar_available():
        b = _Notebook(total, description)
    else:
        b = _Lines(total, description)
    try:
        yield b
    finally:
        if isinstance(b, (_Rich, _Notebook)):
            b.close()


def say(message: str) -> None:
    """A status line for the user (stderr), shown only when progress is on."""
    if _enabled:
        print(message, file=sys.stderr, flush=True)
