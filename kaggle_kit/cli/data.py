"""`kaggle-kit sample` and `kaggle-kit info`: generated data and a look at a data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def sample(
    competition: str = typer.Argument(..., help="cifar10, dog_breed, a slug or a competition URL"),
    out_dir: Path = typer.Argument(..., help="folder to write <slug>.zip and answers.csv into"),
    n_train: Optional[int] = typer.Option(None, help="training images (default: enough per class to learn)"),
    n_test: Optional[int] = typer.Option(None, help="test images"),
    seed: int = typer.Option(0, help="random seed"),
    nested: Optional[bool] = typer.Option(None, "--nested/--flat", help="pack image folders in inner archives"),
    top_folder: bool = typer.Option(False, help="wrap the zip's contents in one folder"),
) -> None:
    """Write a small generated dataset in the competition's exact Kaggle download layout."""
    from ..competitions.registry import resolve
    from ..competitions.samples import write_sample
    from ..competitions.target_samples import write_target_sample

    comp = resolve(competition)
    write = write_sample if comp.target == "label" else write_target_sample  # label sets, values, grades: their own
    path = write(comp, out_dir, n_train=n_train, n_test=n_test, seed=seed, nested=nested, top_folder=top_folder)
    print(f"wrote {path} and {path.parent / 'answers.csv'}")


def info(
    competition: str = typer.Argument(..., help="cifar10, dog_breed, a slug or a competition URL"),
    data_dir: Optional[Path] = typer.Option(
        None, help="data folder or download zip (default data/<slug>, or /kaggle/input/<slug>)"
    ),
) -> None:
    """Counts per split and class, image sizes and cache state of a competition's data."""
    from ..competitions.registry import resolve
    from ..data.info import describe
    from ..data.layout import open_layout

    print(describe(open_layout(resolve(competition), data_dir)))


def register(app: typer.Typer) -> None:
    app.command()(sample)
    app.command()(info)
