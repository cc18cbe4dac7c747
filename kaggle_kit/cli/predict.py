"""`kaggle-kit predict`, `validate` and `score`: write a checked submission from a run, check any submission
file, score a file against answers or a run on its validation split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..competitions.registry import Competition, resolve
from ..core.errors import KitError

PROBLEMS_SHOWN = 10
INVALID_EXIT_CODE = 1  # the file is wrong; 2 (KitError) means the command could not run at all


def competition_for(path: Path, name: str | None) -> Competition:
    """`--competition` when given, else the folder after `submissions/` in the file's path, else what `ensemble`
    recorded beside the file or `predict` recorded for these bytes (as `submit` finds them)."""
    if name:
        return resolve(name)
    parts = Path(path).resolve().parts
    # the nearest submissions/<competition>/ above the file (the last part is the file itself)
    for i in reversed(range(len(parts) - 2)):
        if parts[i] == "submissions":
            try:
                return resolve(parts[i + 1])
            except KitError:
                break
    recorded = _recorded_competition(Path(path))
    if recorded:
        return resolve(recorded)
    raise KitError(f"cannot tell which competition {path} is for: pass --competition (e.g. cifar10 or dog_breed)")


def _record(path: Path) -> dict:
    """What `ensemble` recorded beside this file, or `predict` for its bytes (competition, data_dir, sample)."""
    from ..submissions.provenance import blend_record, find_written

    if not path.is_file():
        return {}
    return blend_record(path) or find_written(path) or {}


def _recorded_competition(path: Path) -> str | None:
    return _record(path).get("competition")


def _recorded_sample(path: Path) -> Path | None:
    sample = _record(path).get("sample")
    return Path(sample) if sample and Path(sample).is_file() else None


def _sample_path(comp: Competition, sample: Path | None, data_dir: Path | None) -> Path:
    if sample is not None:
        return sample
    from ..data.layout import find_sample_path

    # only the sample is needed: no image listing, so checking a file stays instant on CIFAR-10's 300,000
    return find_sample_path(comp, data_dir)


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
    from ..submissions.files import inspect_submission

    comp = competition_for(file, competition)
    if sample is None and data_dir is None:
        sample = _recorded_sample(file)  # the sample the blend or prediction was checked against when written
    result = inspect_submission(file, comp, _sample_path(comp, sample, data_dir))
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

    if target.is_dir() and is_group(target):
        from ..workflows.cross_validation import describe_cv, group_cv

        if answers is not None:
            raise KitError(f"{target} is a fold group, scored on its out-of-fold predictions: drop --answers")
        ignored = [
            flag
            for flag, given in (
                ("--checkpoint", checkpoint != "best"),
                ("--recalibrate", recalibrate),
                ("--metric", metric is not None),
                ("--data-dir", data_dir is not None),
            )
            if given
        ]
        if ignored:
            raise KitError(
                f"{target} is a fold group, scored on its stored OOF predictions (each fold's best.pt, by the "
                f"competition's metric): drop {' and '.join(ignored)}, or score one fold's run folder with it"
            )
        print("\n".join(describe_cv(group_cv(target))))
        return
    if target.is_dir():
        from ..inference.scoring import describe_scores, score_run

        if answers is not None:
            raise KitError(
                f"{target} is a run folder, scored on its own validation split: "
                f"drop --answers (it is for submission files)"
            )
        if metric is not None:
            raise KitError(f"{target} is a run folder, scored by its competition's metric: drop --metric")
        print(
            "\n".join(describe_scores(score_run(target, data_dir, checkpoint, recalibrate=recalibrate, device=device)))
        )
        return
    from ..submissions.files import score, scoring_metric

    if not target.exists():
        raise KitError(f"{target} does not exist: pass a submission CSV (with --answers), a run folder or a fold group")
    if answers is None:
        raise KitError(
            f"scoring {target} needs --answers ANSWERS.csv (id plus the label column of each scored test image)"
        )
    comp = competition_for(target, competition)
    if metric is not None:
        comp = scoring_metric(comp, metric)
    print(comp.metric.describe(score(target, answers, comp)))


def predict_command(
    run_dir: Path = typer.Argument(
        ..., metavar="RUN_DIR", help="A run folder made by `kaggle-kit train`, or a fold group (`train --folds K`)."
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
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Images per batch (default: twice the training batch)."
    ),
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
    """Predict every test image with a trained run (or fold group) and write a validated submission file."""
    from ..inference.predict import predict_run
    from ..records.group_folder import is_group

    if estimate is not None:
        return _print_estimate(run_dir, data_dir, estimate, device, engine, batch_size)
    if is_group(run_dir):
        return _predict_group(run_dir, data_dir, checkpoint, tta, out, device, batch_size, engine)
    from ..records.run_folder import display_epoch

    result = predict_run(
        run_dir,
        data_dir,
        checkpoint,
        tta,
        out,
        device=device,
        batch_size=batch_size,
        engine=engine,
        precision=precision,
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    views = f"TTA on, {len(result.views)} views" if result.tta else "TTA off"
    epoch = f" epoch {display_epoch(result.epoch)}" if result.epoch is not None else ""
    print(
        f"wrote {result.path}: {result.rows} rows ({views} [{result.tta_source}], "
        f"temperature {result.temperature:.3f}, {result.checkpoint}.pt{epoch}, "
        f"{result.images_per_s:,.0f} images/s on {result.device}, {result.engine})"
    )
    print(f"ok: {result.path}: {result.rows} rows, header matches {result.sample_path}")
    if result.val_metric is not None:
        print(f"validation of this configuration: {result.competition.metric.describe(result.val_metric)}")
    print(f"next: kaggle-kit submit {result.path}")


def _print_estimate(run_dir, data_dir, images, device, engine, batch_size) -> None:
    from ..inference.estimate import estimate_runtime
    from ..records.group_folder import FoldGroup, is_group

    group = FoldGroup(run_dir) if is_group(run_dir) else None
    members = [group.fold_dir(fold) for fold in range(1, group.k + 1)] if group else [run_dir]
    found = estimate_runtime(members, data_dir, test_images=images, device=device, engine=engine, batch_size=batch_size)
    for line in found.lines():
        typer.echo(line, err=line.startswith("warning:"))


def _predict_group(group, data_dir, checkpoint, tta, out, device, batch_size, engine) -> None:
    from ..workflows.cross_validation import describe_cv, predict_group

    if checkpoint != "best" or tta is not None:
        raise KitError(
            f"{group} is a fold group: each fold submits its best.pt with its own TTA choice; drop "
            f"--checkpoint and --tta"
        )
    result = predict_group(group, data_dir, out, device=device, batch_size=batch_size, engine=engine)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
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
