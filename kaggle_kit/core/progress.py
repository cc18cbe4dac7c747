"""Progress bars with an ETA, shown at the edges (CLI) and silent inside library calls and tests.

`bar(total, description)` is a context manager whose `advance(n)` moves the bar; when progress is
off it costs nothing. On a terminal it draws a rich bar; in a Jupyter notebook tqdm's notebook bar (plain lines
without tqdm and ipywidgets); elsewhere (logs, CI) it prints a plain line about every 10% with rate and ETA - with
`period` (an epoch's steps), about every 10% of a period that runs long, so a notebook's `!kaggle-kit train` is
never silent for minutes. Progress is on by default; `--quiet` (or KAGGLE_KIT_PROGRESS=0) turns it off.
"""

from __future__ import annotations

import os
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


def duration(seconds: float) -> str:
    """`mm:ss` or `h:mm:ss`, as the progress lines write times."""
    return _fmt(seconds)


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


MIN_GAP_S = 2.0  # a tenth of a period (an epoch) this long or longer gets its own line: the epoch runs long


class _Lines(_Bar):
    def __init__(self, total, description, period: int | None = None):
        super().__init__(total, description)
        self.next_mark = 0.1
        self.period = period
        self.last_line = self.start

    def advance(self, n: int = 1, postfix: str = "") -> None:
        super().advance(n, postfix)
        now = time.perf_counter()
        if self.total and self.done / self.total >= self.next_mark:
            self.next_mark = int(self.done / self.total * 10 + 1) / 10
        elif not (self.period and self._long_period_mark(n, now)):
            return
        self.last_line = now
        rate = self.done / max(now - self.start, 1e-9)
        print(
            f"{self.description}: {self.done}/{self.total} {rate:,.1f}/s eta {_fmt(self.eta or 0)} {self.postfix}",
            file=sys.stderr,
            flush=True,
        )

    def _long_period_mark(self, n: int, now: float) -> bool:
        """A tenth of the period just passed, in a period whose tenth takes a while (a short epoch says its line)."""
        tenth = max(self.period // 10, 1)
        crossed = self.done // tenth != (self.done - n) // tenth
        return crossed and self.done % self.period != 0 and now - self.last_line >= MIN_GAP_S


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
def bar(total: int | None, description: str, period: int | None = None):
    if not _enabled:
        yield _Quiet(total, description)
        return
    if sys.stderr.isatty():
        b = _Rich(total, description)
    elif in_notebook() and notebook_bar_available():
        b = _Notebook(total, description)
    else:
        b = _Lines(total, description, period)
    try:
        yield b
    finally:
        if isinstance(b, (_Rich, _Notebook)):
            b.close()


def wanted(quiet: bool = False) -> bool:
    """Progress is on unless `--quiet` or KAGGLE_KIT_PROGRESS=0 (a terminal, a log, a notebook's `!kaggle-kit`)."""
    return not quiet and os.environ.get("KAGGLE_KIT_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def say(message: str) -> None:
    """A status line for the user (stderr), shown only when progress is on."""
    if _enabled:
        print(message, file=sys.stderr, flush=True)
