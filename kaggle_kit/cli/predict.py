"""`kaggle-kit predict`, `validate` and `score`: write a checked submission from a run, check any submission
file, score a file against answers or a run on its validation split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..api import inference as api
from .options import QUIET, apply_quiet

PROBLEMS_SHOWN = 10
INVALID_EXIT_CODE = 1  # the file is wrong; 2 (KitError) means the command could not run at all


def validate_command(
    file: Path = typer.Argument(..., metavar="FILE", help="The submission CSV to check."),
    competition: Optional[str] = typer.Option(
        None,
        "--competition",
        "-c",
        help="Competition name, slug or URL; default: from submissions/<competition>/ in the path.",
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="The competition's data folder or download, for its sample submission."
    ),
    sample: Optional[Path] = typer.Option(
        None, "--sample", help="The sample submission to check against (instead of the data folder's)."
    ),
) -> None:
    """Check a submission against the sample: header, ids, row count, labels or probabilities."""
    checked = api.validate(file, competition, data_dir, sample)
    result, comp = checked.result, checked.competition
    if result.ok:
        print(f"ok: {file}: {result.rows} rows, header matches {result.sample_path}")
        return
    count = len(result.problems)
    lines = [f"error: {file} is not a valid {comp.slug} submission ({count} problem{'s' if count > 1 else ''}):"]
    lines += [f"  - {problem}" for problem in result.problems[:PROBLEMS_SHOWN]]
    if count > PROBLEMS_SHOWN:
        lines.append(f"  ... and {count - PROBLEMS_SHOWN} more")
    typer.echo("\n".join(lines), err=True)
    raise SystemExit(INVALID_EXIT_CODE)


def score_command(
    target: Path = typer.Argument(
        ..., metavar="FILE|RUN_DIR", help="A submission CSV, or a run folder to score on its validation split."
    ),
    answers: Optional[Path] = typer.Option(
        None, "--answers", help="Answers CSV: id plus the label column (e.g. answers.csv beside a generated sample)."
    ),
    competition: Optional[str] = typer.Option(
        None,
        "--competition",
        "-c",
        help="Competition name, slug or URL; default: from submissions/<competition>/ in the path.",
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="RUN_DIR only: the training data (default: the folder the run was trained on)."
    ),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", help="RUN_DIR only: best, last or swa (a run trained with --swa-epochs)."
    ),
    recalibrate: bool = typer.Option(
        False, "--recalibrate", help="RUN_DIR only: measure again instead of reading the stored calibration."
    ),
    device: str = typer.Option("auto", "--device", help="RUN_DIR only: auto, cpu, cuda or cuda:N."),
    metric: Optional[str] = typer.Option(
        None,
        "--metric",
        help="FILE only: score by this metric instead of the competition's: accuracy, logloss, auc, f1-micro, "
        "f1-macro, qwk, or Kaggle's evaluation metric name.",
    ),
) -> None:
    """Score a submission against an answers file, or a run on its validation split (before/after TTA and
    calibration)."""
    from ..records.group_folder import is_group

    if target.is_dir():
        found = api.score(target, answers, competition, data_dir, checkpoint, recalibrate, device, metric)
        if is_group(target):
            from ..workflows.cross_validation import describe_cv

            print("\n".join(describe_cv(found)))
        else:
            from ..inference.scoring import describe_scores

            print("\n".join(describe_scores(found)))
        return
    from ..competitions.bootstrap import describe_figure

    comp, interval = api.score_file_interval(target, answers, competition, metric)
    print(describe_figure(comp.metric, interval))


def predict_command(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="A run folder (`train`), a fold group (`train --folds K`) or an ensemble's CSV."
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="The competition's data folder or download (default: the one the run was trained on)."
    ),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", help="best (highest validation score), last, or swa (weights averaged by --swa-epochs)."
    ),
    tta: Optional[bool] = typer.Option(
        None,
        "--tta/--no-tta",
        help="Test-time augmentation (default: the run's recipe, or on where it improved validation).",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="The CSV to write (default: submissions/<competition>/<run name>.csv)."
    ),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when there is one), cpu, cuda or cuda:N."),
    devices: Optional[str] = typer.Option(
        None,
        "--devices",
        help="Split the test set across these: cuda:0,cuda:1 (default: every visible GPU), or cpu,cpu to test it.",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per batch (default: the run's val_batch_size)."
    ),
    quiet: bool = QUIET,
    engine: str = typer.Option(
        "torch", "--engine", help="torch, onnx (ONNX Runtime; exported once into the run folder) or auto (the faster)."
    ),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="CUDA autocast: fp32, fp16 or bf16 (default: the run's, auto by the GPU)."
    ),
    estimate: Optional[int] = typer.Option(
        None,
        "--estimate",
        min=1,
        metavar="N",
        help="Write nothing: measure here and estimate the time for N test images.",
    ),
) -> None:
    """Predict every test image with a trained run, fold group or ensemble and write a validated submission file."""
    from ..records.ensemble_record import is_ensemble
    from ..records.group_folder import is_group

    apply_quiet(quiet)
    if estimate is not None:
        from ..api.remote import runtime_estimate

        chosen = dict(engine=engine, device=device, devices=devices, batch_size=batch_size)
        found = runtime_estimate(run_dir, data_dir, test_images=estimate, **chosen)
        for line in found.lines():
            typer.echo(line, err=line.startswith("warning:"))
        return
    chosen = (checkpoint, tta, out, device, batch_size, engine, precision, devices)
    result = api.predict(run_dir, data_dir, *chosen).details
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for note in getattr(result, "notes", []):
        typer.echo(f"note: {note}", err=True)
    if is_group(run_dir):
        return _report_group(result)
    if is_ensemble(run_dir):
        print(f"wrote {result.path}: {result.rows} rows from {result.members} members, with the ensemble's weights")
        print(f"ok: {result.path}: {result.rows} rows, header matches {result.sample_path}")
        return print(f"next: kaggle-kit submit {result.path}")
    _report_run(result)


def _report_run(result) -> None:
    from ..records.run_folder import display_epoch

    views = f"TTA on, {len(result.views)} views" if result.tta else "TTA off"
    epoch = f" epoch {display_epoch(result.epoch)}" if result.epoch is not None else ""
    print(
        f"wrote {result.path}: {result.rows} rows ({views} [{result.tta_source}], "
        f"temperature {result.temperature:.3f}, {result.checkpoint}.pt{epoch}, "
        f"{result.images_per_s:,.0f} images/s on {result.device}, {result.engine})"
    )
    print(f"ok: {result.path}: {result.rows} rows, header matches {result.sample_path}")
    if result.batch_size:
        print(f"batch {result.batch_size} ({result.batch_reason})")
    if result.val_metric is not None and result.calibration:
        from ..inference.scoring import calibrated_figure

        figure = calibrated_figure(result.competition.metric, result.calibration, result.tta)
        print(f"{figure} <- this configuration")
    print(f"next: kaggle-kit submit {result.path}")


def _report_group(result) -> None:
    from ..workflows.cross_validation import describe_cv

    print(
        f"wrote {result.path}: {result.rows} rows (the folds' test logits averaged, temperature "
        f"{result.temperature:.3f} fitted on the OOF predictions)"
    )
    print(f"ok: {result.path}: {result.rows} rows, header matches {result.sample_path}")
    if result.cv:
        print("\n".join(describe_cv(result.cv)))
    print(f"next: kaggle-kit submit {result.path}")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("score")(score_command)
    app.command("predict")(predict_command)
