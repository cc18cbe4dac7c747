"""Progress for the Python API: a call made from a notebook or script shows its bars (tqdm's in Jupyter, rich's on a
terminal, plain lines elsewhere), where the `kaggle-kit` commands decide by their own terminal."""

from __future__ import annotations

import functools
import inspect
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
    """`call` showing its progress unless called with `quiet=True`, as every command takes `--quiet`: what
    `kk.<name>` hands out (the commands call the plain function). A call without a `quiet` parameter of its own
    gets one here."""
    signature = inspect.signature(call)
    takes_quiet = "quiet" in signature.parameters

    @functools.wraps(call)
    def shown(*args, quiet: bool = False, **kwargs):
        with progress_shown(quiet):
            return call(*args, quiet=quiet, **kwargs) if takes_quiet else call(*args, **kwargs)

    if not takes_quiet:  # help() and a notebook's completion show it
        option = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=bool)
        before_kwargs = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        kwargs = [p for p in signature.parameters.values() if p.kind == inspect.Parameter.VAR_KEYWORD]
        shown.__signature__ = signature.replace(parameters=[*before_kwargs, option, *kwargs])
    return shown
