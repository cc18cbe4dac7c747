"""`kaggle-kit analyze`: error-analysis pictures of a run from its stored predictions, with no retraining."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def analyze(
    run: Path = typer.Argument(..., metavar="RUN_DIR", help="a run folder made by `kaggle-kit train`"),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="DIR", help="where the pictures go (default RUN_DIR/analysis)"
    ),
    data_dir: Optional[Path] = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="the run's data folder, for the images (default the one it was trained on)",
    ),
) -> None:
    """Confusion matrix, most-confused pairs, highest-loss images, per-class metric, reliability: analysis.md."""
    from ..api.inference import analyze as analyze_run

    result = analyze_run(run, out, data_dir, on_warning=lambda why: print(f"warning: {why}", file=sys.stderr))
    for t, p, n in result.pairs[:3]:
        print(f"confused: {t} -> {p} ({n} images)")
    print(f"wrote {len(result.files)} files; open {result.folder / 'analysis.md'}")


def register(app: typer.Typer) -> None:
    app.command()(analyze)
