"""`kaggle-kit init`: a new competition's declaration from its download."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import KitError


def _slug(text: str) -> str:
    match = re.search(r"kaggle\.com/(?:c|competitions)/([^/?#\s]+)", text)
    return (match.group(1) if match else text).strip().strip("/")


def init(
    slug: str = typer.Argument(..., help="the competition's slug or URL"),
    data_dir: Optional[Path] = typer.Option(
        None,
        help="the download: its zip, nested archives or unpacked folder (default data/<slug>, /kaggle/input/<slug>)",
    ),
    metric: Optional[str] = typer.Option(
        None, help="evaluation metric: accuracy, logloss, auc, f1-micro, f1-macro, qwk or Kaggle's name for it"
    ),
    name: Optional[str] = typer.Option(None, help="short name (default: the slug with underscores)"),
    out: Optional[Path] = typer.Option(
        None, help="declaration file to write (default: the user's competitions folder)"
    ),
    positive: Optional[str] = typer.Option(None, help="a binary target: the class its probability column is of"),
    target: Optional[str] = typer.Option(
        None,
        help="what each image is asked: label, multilabel, regression, ordinal, topk (default: from the files)",
    ),
    k: Optional[int] = typer.Option(
        None, "--k", help="a top-k target: classes ranked per image (default: the sample's)"
    ),
    force: bool = typer.Option(False, "--force", help="overwrite an existing declaration file (and its edits)"),
) -> None:
    """Infer a competition's declaration from its download, print what was inferred, and write it."""
    from ..workflows.init_competition import describe, infer, resolve_metric, write_declaration

    slug = _slug(slug)
    found = infer(
        slug, resolve_metric(slug, metric), data_dir=data_dir, name=name, positive=positive, target=target, k=k
    )
    for line in describe(found):
        print(line)
    target = out or _user_folder() / f"{found.competition.name}.toml"
    if target.exists() and not force:  # a declaration is edited by hand (recipes, fixes): never lost silently
        raise KitError(f"{target} already exists: pass --force to overwrite it, or --out another file")
    path = write_declaration(found.competition, out)
    comp = found.competition
    print(f"wrote {path}: next `kaggle-kit train {comp.name} --data-dir {found.layout.root}`")
    if not _found_where_written(comp.name, path):
        print(
            f"note: {path} is not where kaggle-kit looks for declarations: move it to "
            f"./competitions/{comp.name}.toml or {_user_folder() / (comp.name + '.toml')} before training",
            file=sys.stderr,
        )


def _user_folder() -> Path:
    from ..competitions.registry import declaration_folders

    return dict(declaration_folders())["user"]


def _found_where_written(name: str, path: Path) -> bool:
    from ..competitions.registry import all_competitions

    comp = all_competitions().get(name)
    return comp is not None and Path(comp.source).resolve() == path.resolve()


def register(app: typer.Typer) -> None:
    app.command()(init)
