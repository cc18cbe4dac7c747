"""Progress for the Python API: a call made from a notebook or script shows its bars (tqdm's in Jupyter, rich's on a
terminal, plain lines elsewhere), where the `kaggle-kit` commands decide by their own terminal."""

from __future__ import annotations

import functools
from contextlib import contextmanager

from ..core import progress


@contextmanager
def progress_shown(quiet: bool = False):
    """Progress on (off: `quiet`) for the duration, then as it was (a library caller that turned it off gets it off
    again)."""
    was = progress.enabled()
    progress.enable(not quiet)
    try:
        yield
    finally:
        progress.enable(was)


def with_progress(call):
    """`call` showing its progress unless called with `quiet=True`: what `kk.<name>` hands out (the commands call
    the plain function)."""

    @functools.wraps(call)
    def shown(*args, **kwargs):
        with progress_shown(bool(kwargs.get("quiet"))):
            return call(*args, **kwargs)

    return shown
