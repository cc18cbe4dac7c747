"""The command line this process is running: the process's own, or the list `cli.main` was called with.

Called from Python (a notebook, the tests), `sys.argv` is the caller's, so the launcher of `--nproc` workers and
the run's recorded `command` would describe another program. `cli.main` says what it was given; both ask here.
"""

from __future__ import annotations

import sys

_given: list[str] | None = None


def set_arguments(argv: list[str] | None) -> list[str] | None:
    """Record the arguments `cli.main` runs (None: the process's own); returns the ones recorded before."""
    global _given
    before, _given = _given, None if argv is None else [str(arg) for arg in argv]
    return before


def arguments() -> list[str]:
    """The command's arguments, without the program name."""
    return list(sys.argv[1:]) if _given is None else list(_given)


def command() -> list[str]:
    """The command as a person would type it again."""
    return list(sys.argv) if _given is None else ["kaggle-kit", *_given]
