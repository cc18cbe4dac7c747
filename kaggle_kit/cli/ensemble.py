"""`kaggle-kit ensemble`: blend runs and fold groups into one validated submission."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import QUIET, apply_quiet


def ensemble_command(
    members: list[Path] = typer.Argument(
        ..., metavar="MEMBER...", help="Run folders or fold groups (two or more), or one tune study with --top K."
    ),
    out: Path = typer.Option(..., "--out", help="The submission CSV to write."),
    weights: str = typer.Option(
        "auto",
        "--weights",
        help="auto (minimising the blend's log loss on the members' shared held-out predictions, cross-fitted; members "
        "under 0.05 dropped), equal, "
        "or one number per member (e.g. 0.7,0.3)",
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="The competition's data (default: the folder the members were trained on)."
    ),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu, cuda or cuda:N."),
    top: Optional[int] = typer.Option(
        None, "--top", metavar="K", help="MEMBER is a tune study (runs/*/tune-*): blend its K best complete trials"
    ),
    quiet: bool = QUIET,
) -> None:
    """Blend the members' test probabilities with weights chosen on their shared held-out predictions."""
    from ..api.inference import ensemble
    from ..competitions.bootstrap import Interval

    apply_quiet(quiet)
    result = ensemble(members, out, weights, data_dir, device=device, top=top)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    metric = result.competition.metric
    print(f"held-out predictions the members share: {result.shared_images} images ({metric.label}: {metric.direction})")
    width = max(len(m["name"]) for m in result.members)
    for member in result.members:
        kind, weight = member["kind"], f"weight {member['weight']:.3f}"
        figure = Interval.from_dict(member.get("interval")) or f"{member['score']:.4f}"
        print(f"  {member['name'].ljust(width)}  {kind:<12} {weight:<14} {metric.label} {figure}")
    crossed = ", cross-fitted" if result.cross_fitted else ""
    figure = result.blend_interval or f"{result.blend_score:.4f}"
    print(f"  {'blend'.ljust(width)}  {result.weights_mode + ' weights' + crossed:<27} {metric.label} {figure}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {result.path}: {result.rows} rows (members, weights, scores: {result.path.name}.ensemble.json)")
    print(f"ok: {result.path}: {result.rows} rows, header matches {result.sample_path}")
    print(f"next: kaggle-kit submit {result.path}")


def register(app: typer.Typer) -> None:
    app.command("ensemble")(ensemble_command)
