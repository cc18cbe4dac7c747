"""`kaggle-kit init`: a new competition's declaration from its download."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


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
    train_dir: Optional[str] = typer.Option(None, help="the training images' folder, relative to the download"),
    test_dir: Optional[str] = typer.Option(None, help="the test images' folder, relative to the download"),
    labels: Optional[str] = typer.Option(None, help="the CSV holding the training labels (its file name)"),
    id_column: Optional[str] = typer.Option(None, help="the labels CSV's image id column (the sample's)"),
    label_column: Optional[str] = typer.Option(None, help="the labels CSV's label column"),
    group_column: Optional[str] = typer.Option(
        None, help="the column naming each image's group (driver, patient): validation never shares a group"
    ),
    groups: Optional[str] = typer.Option(
        None, help="the CSV holding --group-column when it is not the labels CSV (driver_imgs_list.csv)"
    ),
    no_groups: bool = typer.Option(False, "--no-groups", help="validate image by image, ignoring any group column"),
    features: Optional[str] = typer.Option(
        None,
        help="tabular columns fed to the model beside the images, COL,COL,...: columns of the labels CSV that the "
        "test CSV (test.csv) holds too; init lists them",
    ),
) -> None:
    """Infer a competition's declaration from its download, print what was inferred, and write it."""
    from ..api.competitions import init as declare
    from ..workflows.init_competition import describe

    made = declare(
        slug, data_dir, metric, name, out, positive, force, train_dir=train_dir, test_dir=test_dir, labels=labels,
        id_column=id_column, label_column=label_column, group_column=group_column, groups=groups, no_groups=no_groups,
        target=target, k=k, features=features,
    )  # fmt: skip
    for line in describe(made.found):
        print(line)
    comp = made.found.competition
    done = f"{made.path} already holds this declaration" if made.unchanged else f"wrote {made.path}"
    print(f"{done}: next `kaggle-kit train {comp.name} --data-dir {made.found.layout.root}`")
    if not made.found_there:
        print(
            f"note: {made.path} is not where kaggle-kit looks for declarations: move it to "
            f"./competitions/{comp.name}.toml or {made.user_folder / (comp.name + '.toml')} before training",
            file=sys.stderr,
        )


def register(app: typer.Typer) -> None:
    app.command()(init)
