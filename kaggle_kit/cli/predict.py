"""`kaggle-kit validate` and `kaggle-kit score`: check a submission file, score it against answers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..competition import Competition, resolve
from ..errors import KitError

PROBLEMS_SHOWN = 10
INVALID_EXIT_CODE = 1  # the file is wrong; 2 (KitError) means the command could not run at all


def competition_for(path: Path, name: str | None) -> Competition:
    """`--competition` when given, else the folder after `submissions/` in the file's path."""
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
    raise KitError(f"cannot tell which competition {path} is for: pass --competition (e.g. cifar10 or dog_breed)")


def _sample_path(comp: Competition, sample: Path | None, data_dir: Path | None) -> Path:
    if sample is not None:
        return sample
    from ..layout import find_sample_path

    # only the sample is needed: no image listing, so checking a file stays instant on CIFAR-10's 300,000
    return find_sample_path(comp, data_dir)


def validate_command(
    file: Path = typer.Argument(..., metavar="FILE", help="The submission CSV to check."),
    competition: Optional[str] = typer.Option(None, "--competition", "-c", help="Competition name, slug or URL; default: from submissions/<competition>/ in the path."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The competition's data folder or download, for its sample submission."),
    sample: Optional[Path] = typer.Option(None, "--sample", help="The sample submission to check against (instead of the data folder's)."),
) -> None:
    """Check a submission against the sample: header, ids, row count, labels or probabilities."""
    from ..submission import inspect_submission

    comp = competition_for(file, competition)
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
    target: Path = typer.Argument(..., metavar="FILE", help="A submission CSV."),
    answers: Optional[Path] = typer.Option(None, "--answers", help="Answers CSV: id plus the label column (e.g. answers.csv beside a generated sample)."),
    competition: Optional[str] = typer.Option(None, "--competition", "-c", help="Competition name, slug or URL; default: from submissions/<competition>/ in the path."),
) -> None:
    """Score a submission against an answers file with the competition's metric."""
    from ..submission import score

    if answers is None:
        raise KitError(f"scoring {target} needs --answers ANSWERS.csv (id plus the label column of each scored test image)")
    if target.is_dir():
        raise KitError(f"{target} is a folder: pass the submission CSV to score against --answers")
    comp = competition_for(target, competition)
    print(comp.metric.describe(score(target, answers, comp)))


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("score")(score_command)
