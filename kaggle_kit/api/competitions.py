"""`kk.init` and `kk.sample`: a new competition's declaration from its download, and generated downloads in a
competition's exact Kaggle layout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import KitError


def slug_of(text: str) -> str:
    """A competition's slug, from the slug itself or a pasted competition URL."""
    match = re.search(r"kaggle\.com/(?:c|competitions)/([^/?#\s]+)", text)
    return (match.group(1) if match else text).strip().strip("/")


@dataclass(frozen=True)
class Declared:
    """What `init` inferred (`found`: competition, layout, description), the file written (or found already holding
    it), and whether kaggle-kit finds the declaration there."""

    found: object
    path: Path
    found_there: bool
    user_folder: Path
    unchanged: bool = False  # the file already held exactly this declaration, so it was not written again


def init(
    slug: str,
    data_dir: Path | str | None = None,
    metric: str | None = None,
    name: str | None = None,
    out: Path | str | None = None,
    positive: str | None = None,
    force: bool = False,
    *,
    train_dir: str | None = None,
    test_dir: str | None = None,
    labels: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    group_column: str | None = None,
    groups: str | None = None,
    no_groups: bool = False,
    target: str | None = None,
    k: int | None = None,
    features: list[str] | tuple[str, ...] | str | None = None,
) -> Declared:
    """Infer a competition's declaration from its download and write it (never over an edited one unless `force`).
    The keywords settle what the download cannot: where the images and labels are, the group column, and the
    tabular `features` (columns of the labels CSV and the test CSV, fed to the model beside the images; a
    comma-separated string or a list)."""
    from ..competitions.declaration import dump
    from ..competitions.registry import all_competitions, declaration_folders
    from ..workflows.init_competition import Hints, infer, resolve_metric, write_declaration

    slug = slug_of(slug)
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()]
    hints = Hints(
        train_dir, test_dir, labels, id_column, label_column, group_column, groups, no_groups, tuple(features or ())
    )
    found = infer(
        slug,
        resolve_metric(slug, metric),
        data_dir=data_dir,
        name=name,
        positive=positive,
        hints=hints,
        target=target,
        k=k,
    )
    user_folder = dict(declaration_folders())["user"]
    target = Path(out) if out else user_folder / f"{found.competition.name}.toml"
    # the same command again (after it was killed once its file was written) finds its own declaration: kept
    unchanged = target.is_file() and target.read_bytes() == dump(found.competition).encode()
    if target.exists() and not force and not unchanged:  # edited by hand (recipes, fixes): never lost silently
        raise KitError(f"{target} already exists: pass --force to overwrite it, or --out another file")
    path = target if unchanged else write_declaration(found.competition, out)
    registered = all_competitions().get(found.competition.name)
    found_there = registered is not None and Path(registered.source).resolve() == Path(path).resolve()
    return Declared(found, Path(path), found_there, user_folder, unchanged)


def sample(
    competition: str,
    out_dir: Path | str,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    nested: bool | None = None,
    top_folder: bool = False,
) -> Path:
    """Write a small generated download in the competition's Kaggle layout (`<slug>.zip`, plus answers.csv
    beside it for local scoring); returns the zip's path, a `data_dir` for `train`."""
    from ..competitions.any_sample import write_any_sample
    from ..competitions.registry import resolve

    options = dict(n_train=n_train, n_test=n_test, seed=seed, nested=nested, top_folder=top_folder)
    return write_any_sample(resolve(competition), Path(out_dir), **options)
