"""Options several commands share, each defined once."""

from __future__ import annotations

import typer

from ..core import progress

QUIET = typer.Option(False, "--quiet", help="no progress lines (they go to stderr, on by default)")


def apply_quiet(quiet: bool) -> None:
    """Progress lines off for this command under `--quiet`; KAGGLE_KIT_PROGRESS=0 turns them off for every one."""
    progress.enable(progress.enabled() and not quiet)
