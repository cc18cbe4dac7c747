"""`kaggle-kit competitions`: every declared competition, built-in or the user's, as a table."""

from __future__ import annotations

import typer


def competitions() -> None:
    """List the declared competitions: source, metric (with its direction), data layout and recipes."""
    from ..competitions.registry import LISTING_COLUMNS, listing

    rows = listing()
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in LISTING_COLUMNS}
    for row in [dict(zip(LISTING_COLUMNS, LISTING_COLUMNS)), *rows]:
        print("  ".join(row[c].ljust(widths[c]) for c in LISTING_COLUMNS).rstrip())


def register(app: typer.Typer) -> None:
    app.command()(competitions)
