"""`kk.predict`, `kk.validate`, `kk.score`, `kk.analyze`, `kk.ensemble`: what `kaggle-kit predict`, `validate`,
`score`, `analyze` and `ensemble` decide, returned as objects instead of printed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..competitions.registry import Competition, resolve
from ..core.errors import KitError
from .results import FoldGroup, Run, Submission, write_submission


def predict(
    run: Run | FoldGroup | Path | str,
    data_dir: Path | str | None = None,
    checkpoint: str = "best",
    tta: bool | None = None,
    out: Path | str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    engine: str = "torch",
    precision: str | None = None,
    devices: str | list[str] | None = None,
    quiet: bool = False,
) -> Submission:
    """Predict every test image with a run (or fold group) and write a validated submission: its DataFrame and
    path. A fold group submits each fold's best.pt with its own TTA choice, so `checkpoint` and `tta` are a run's.
    `engine`: torch, onnx (ONNX Runtime) or auto; `precision`: the CUDA autocast dtype (docs/inference.md).
    `devices`: the test set split across them in contiguous shards (default: every visible GPU, e.g. a Kaggle
    notebook's two T4s; ["cpu", "cpu"] runs the same split on a CPU). `quiet`: no progress lines."""
    from contextlib import nullcontext

    from .console import progress_shown

    path = Path(run.folder if isinstance(run, (Run, FoldGroup)) else run)
    with progress_shown(quiet=True) if quiet else nullcontext():  # not quiet: as the caller (a command) set it
        return write_submission(path, data_dir, checkpoint, tta, out, device, batch_size, engine, precision, devices)


def competition_for(path: Path, name: str | None) -> Competition:
    """`competition` when given, else the folder after `submissions/` in the file's path, else what `ensemble`
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
    recorded = _record(Path(path)).get("competition")
    if recorded:
        return resolve(recorded)
    raise KitError(f"cannot tell which competition {path} is for: pass --competition (e.g. cifar10 or dog_breed)")


def _record(path: Path) -> dict:
    """What `ensemble` recorded beside this file, or `predict` for its bytes (competition, data_dir, sample)."""
    from ..submissions.provenance import blend_record, find_written

    if not path.is_file():
        return {}
    return blend_record(path) or find_written(path) or {}


def _recorded_sample(path: Path) -> Path | None:
    sample = _record(path).get("sample")
    return Path(sample) if sample and Path(sample).is_file() else None


@dataclass(frozen=True)
class Checked:
    """A submission checked against its sample: `ok`, or the problems found."""

    file: Path
    competition: Competition
    result: Any  # submissions.files.Inspection: ok, rows, problems, sample_path

    @property
    def ok(self) -> bool:
        return bool(self.result.ok)

    @property
    def problems(self) -> list[str]:
        return list(self.result.problems)


def validate(
    file: Path | str | Submission,
    competition: str | None = None,
    data_dir: Path | str | None = None,
    sample: Path | str | None = None,
) -> Checked:
    """Check a submission against the sample: header, ids, row count, labels or probabilities."""
    from ..data.layout import find_sample_path
    from ..submissions.files import inspect_submission

    file = Path(file.path if isinstance(file, Submission) else file)
    comp = competition_for(file, competition)
    if sample is None and data_dir is None:
        sample = _recorded_sample(file)  # the sample the blend or prediction was checked against when written
    # only the sample is needed: no image listing, so checking a file stays instant on CIFAR-10's 300,000
    sample_path = Path(sample) if sample is not None else find_sample_path(comp, data_dir)
    return Checked(file, comp, inspect_submission(file, comp, sample_path))


def score(
    target: Path | str | Run | FoldGroup | Submission,
    answers: Path | str | None = None,
    competition: str | None = None,
    data_dir: Path | str | None = None,
    checkpoint: str = "best",
    recalibrate: bool = False,
    device: str = "auto",
    metric: str | None = None,
) -> Any:
    """A fold group's CV summary (dict), a run's scores on its validation split (before/after TTA and calibration),
    or a submission file's score against `answers` (a float, by the competition's metric or `metric`)."""
    from ..records.group_folder import is_group

    target = Path(getattr(target, "folder", None) or getattr(target, "path", None) or target)
    if target.is_dir() and is_group(target):
        from ..workflows.cross_validation import group_cv

        _refuse_for_group(target, answers, checkpoint, recalibrate, metric, data_dir)
        return group_cv(target)
    if target.is_dir():
        from ..inference.scoring import score_run

        if answers is not None:
            raise KitError(
                f"{target} is a run folder, scored on its own validation split: "
                f"drop --answers (it is for submission files)"
            )
        if metric is not None:
            raise KitError(f"{target} is a run folder, scored by its competition's metric: drop --metric")
        return score_run(target, data_dir, checkpoint, recalibrate=recalibrate, device=device)
    return score_file(target, answers, competition, metric)[1]


def score_file(target: Path, answers, competition: str | None, metric: str | None) -> tuple[Competition, float]:
    """A submission file's score against the answers, and the competition (its metric) that scored it."""
    from ..submissions.files import score as score_submission

    comp = _scoring_competition(target, answers, competition, metric)
    return comp, score_submission(target, answers, comp)


def score_file_interval(target: Path, answers, competition: str | None, metric: str | None):
    """`score_file` with the score's 95% bootstrap interval over the answered rows and their number (1000
    rescorings: the CLI's `score FILE` line)."""
    from ..submissions.files import score_interval

    comp = _scoring_competition(target, answers, competition, metric)
    return comp, score_interval(target, answers, comp)


def _scoring_competition(target: Path, answers, competition: str | None, metric: str | None) -> Competition:
    from ..submissions.files import scoring_metric

    if not target.exists():
        raise KitError(f"{target} does not exist: pass a submission CSV (with --answers), a run folder or a fold group")
    if answers is None:
        raise KitError(
            f"scoring {target} needs --answers ANSWERS.csv (id plus the label column of each scored test image)"
        )
    comp = competition_for(target, competition)
    if metric is not None:
        comp = scoring_metric(comp, metric)
    return comp


def _refuse_for_group(target, answers, checkpoint, recalibrate, metric, data_dir) -> None:
    if answers is not None:
        raise KitError(f"{target} is a fold group, scored on its out-of-fold predictions: drop --answers")
    given = (
        ("--checkpoint", checkpoint != "best"),
        ("--recalibrate", recalibrate),
        ("--metric", metric is not None),
        ("--data-dir", data_dir is not None),
    )
    ignored = [flag for flag, is_given in given if is_given]
    if ignored:
        raise KitError(
            f"{target} is a fold group, scored on its stored OOF predictions (each fold's best.pt, by the "
            f"competition's metric): drop {' and '.join(ignored)}, or score one fold's run folder with it"
        )


def analyze(
    run: Run | Path | str,
    out: Path | str | None = None,
    data_dir: Path | str | None = None,
    on_warning: Callable[[str], None] | None = None,
):
    """Confusion matrix, most-confused pairs, highest-loss images, per-class metric, reliability: analysis.md.
    Returns the Analysis (its `folder`, `files`, `pairs`)."""
    from ..inference.analysis import analyze_run

    return analyze_run(Path(getattr(run, "folder", run)), out, data_dir, on_warning=on_warning)


def ensemble(
    members: list | Path | str,
    out: Path | str,
    weights: str = "auto",
    data_dir: Path | str | None = None,
    device: str = "auto",
    top: int | None = None,
):
    """Blend runs and fold groups into one validated submission, weights chosen on their shared held-out
    predictions; with `top=K`, `members` is one `tune` study folder and the K best trials are blended. Returns the
    EnsembleResult (path, members with weight and score, blend score, warnings)."""
    from ..workflows.target_ensembles import ensemble_any as blend  # one label per image, or another kind

    listed = [members] if isinstance(members, (str, Path)) else list(members)
    paths = [Path(getattr(member, "folder", member)) for member in listed]
    if top is None and not any(_is_study(path) for path in paths):
        return blend(paths, Path(out), weights, data_dir, device=device)
    from ..core.errors import KitError
    from ..study.tune_top import SELECTION_NOTE, top_trials

    if top is None:
        study = next(path for path in paths if _is_study(path))
        raise KitError(f"{study} is a tune study: add --top K to blend its K best trials")
    if len(paths) != 1 or not _is_study(paths[0]):
        raise KitError(f"--top {top} blends the best trials of one tune study: give its folder alone (runs/*/tune-*)")
    result = blend(top_trials(paths[0], top), Path(out), weights, data_dir, device=device)
    result.notes.append(SELECTION_NOTE.format(k=top))
    return result


def _is_study(path: Path) -> bool:
    from ..study.tune_top import is_study

    return is_study(path)
