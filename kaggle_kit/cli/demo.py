"""`kaggle-kit demo`: the whole loop on a generated sample, as the README's first command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import QUIET, apply_quiet


def demo(
    competition: str = typer.Argument("cifar10", help="cifar10 or dog_breed"),
    out: Path = typer.Option(Path("demo"), help="folder for the sample data, the run and the submission"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (default 4)"),
    arch: Optional[str] = typer.Option(None, help="timm architecture (default: the competition's best recipe)"),
    pretrained: Optional[bool] = typer.Option(
        None, "--pretrained/--no-pretrained", help="ImageNet weights from the Hugging Face hub (default: the recipe's)"
    ),
    weights: Optional[Path] = typer.Option(None, help="a local weights file instead of the hub (.safetensors, .pth)"),
    quiet: bool = QUIET,
) -> None:
    """Generate a sample download, train, predict, validate the submission and score it locally."""
    from ..competitions.bootstrap import describe_figure
    from ..workflows.demo import run_demo

    apply_quiet(quiet)

    result = run_demo(
        competition, out, epochs=epochs, arch=arch, pretrained=pretrained, weights=str(weights) if weights else None
    )
    metric = result.competition.metric
    print(f"sample data:  {result.data_dir}")
    print(f"run:          {result.run_dir}")
    if result.best_val_metric is not None:
        print(f"validation:   {describe_figure(metric, result.validation, result.best_val_metric)}")
    print(f"submission:   {result.submission} (validated against the sample submission)")
    print(
        f"test score:   {metric.describe(result.test_score)} (against the sample's {result.test_images} hidden answers)"
    )
    print(
        f"took {result.seconds:.0f}s; on Kaggle data: kaggle-kit download {result.competition.name} "
        f"&& kaggle-kit train {result.competition.name}"
    )
    print(
        "your own competition: kaggle-kit init <slug> --data-dir <its download zip> --metric <its metric>, "
        "then kaggle-kit train <the name init prints>"
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
