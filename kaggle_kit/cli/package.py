"""`kaggle-kit package` (with `--rehearse`): a run as a Kaggle dataset and an offline notebook, rehearsed here."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .options import QUIET, apply_quiet


def package_command(
    runs: list[Path] = typer.Argument(
        ...,
        metavar="RUN_OR_GROUP...",
        help="A run folder, a fold group (train --folds K), an ensemble's CSV, or a folder holding one run.",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Where to write dataset/ and notebook/ (default packages/<competition>/<run>)."
    ),
    owner: Optional[str] = typer.Option(
        None, "--owner", help="Kaggle user owning the dataset and notebook (default: the credentials' user)."
    ),
    deps_wheels: bool = typer.Option(
        True,
        "--deps-wheels/--no-deps-wheels",
        help="Add the pinned pure-python dependency wheels (albumentations, albucore).",
    ),
    rehearse: bool = typer.Option(
        False, "--rehearse", help="Run the notebook here, offline, and compare its submission with predict's."
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="--rehearse: the competition's download (default: the run's)."
    ),
    engine: str = typer.Option("torch", "--engine", help="torch, or onnx (ships the export and onnxruntime's wheel)."),
    test_images: Optional[int] = typer.Option(
        None, "--test-images", min=1, help="Hidden test images for the runtime estimate (default: declared, or local)."
    ),
    quiet: bool = QUIET,
) -> None:
    """Package a trained run, fold group or ensemble for a Kaggle code competition: weights dataset + notebook."""
    apply_quiet(quiet)
    from ..api.remote import package, runtime_estimate

    made, done = package(runs, out, owner, deps_wheels, rehearse, data_dir, engine=engine)
    what = {"group": "fold group", "ensemble": "ensemble"}.get(made.kind, "run")
    print(f"packaged {what} {made.run} of {made.competition.slug} in {made.folder} ({engine} engine)")
    print(f"  dataset  {made.dataset_id}: {len(made.files)} files ({', '.join(sorted(made.files))})")
    print(f"  notebook {made.notebook_id}: internet off, sources {made.dataset_id} and {made.competition.slug}")
    if done is not None:
        print(
            f"rehearsal passed: {done.submission} matches predict's {done.expected} ({done.rows} rows, largest "
            f"difference {done.max_difference:.1e}, notebook ran {done.seconds:.0f} s offline)"
        )
        if done.steps:
            print("  notebook steps: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in done.steps.items()))
    estimate = runtime_estimate(runs, data_dir, test_images=test_images, engine=engine)
    for line in estimate.lines():
        typer.echo(line, err=line.startswith("warning:"))
    print(f"next: kaggle-kit push {made.folder}")


def push_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="A folder written by `kaggle-kit package`."),
    message: Optional[str] = typer.Option(
        None, "--message", "-m", help="Dataset version notes and submission description."
    ),
    timeout: float = typer.Option(9 * 3600.0, "--timeout", help="Seconds to follow the notebook's run."),
    score_timeout: float = typer.Option(1800.0, "--score-timeout", help="Seconds to wait for the score."),
) -> None:
    """Upload the dataset, push and follow the notebook, fetch its output, submit it and wait for the score."""
    from ..api.remote import push

    done = push(folder, message, timeout, score_timeout)
    metric = done.competition.metric
    print(f"dataset {done.dataset} version {done.dataset_version}: ready")
    print(
        f"notebook {done.notebook} version {done.notebook_version}: complete in {done.seconds:.0f} s, "
        f"output in {done.output}"
    )
    print(f"submitted notebook version {done.notebook_version} to {done.competition.slug} as submission {done.ref}")
    score = "not published" if done.public_score is None else f"{done.public_score:.5f}"
    print(f"  public score {score} ({metric.label} - {metric.direction})")


def register(app: typer.Typer) -> None:
    app.command("package")(package_command)
    app.command("push")(push_command)
