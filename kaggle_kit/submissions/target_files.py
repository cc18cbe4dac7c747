"""Submissions of targets other than one label per image: written in the sample's form, checked, scored.

The target kind (competitions/targets.py) says what the columns hold; this module keeps the sample's header
byte for byte and its id order, refuses a file of the wrong form (probability columns where label sets are
asked for, a fraction where a grade is) and scores a file against hidden answers in the training CSV's form.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..competitions.registry import Competition
from ..competitions.targets import target_of
from ..core.errors import KitError
from ..data.sample_submission import one_line, quoted_examples, read_csv_cells


def _classes(comp: Competition, sample: pd.DataFrame, classes: list[str] | None) -> list[str]:
    if classes:
        return list(classes)
    if comp.submission_kind == "probabilities":
        return [str(c) for c in sample.columns[1:]]
    return list(comp.declared_classes)


def target_problems(frame: pd.DataFrame, found: list[str], comp: Competition, sample: pd.DataFrame) -> list[str]:
    """The first value in `frame` (read as text, columns by position) that the target kind refuses, if any."""
    named = frame.copy()
    named.columns = found[: frame.shape[1]] + [f"column {k + 1}" for k in range(len(found), frame.shape[1])]
    if named.columns.duplicated().any():
        return []  # the header check has said so already
    try:
        target_of(comp).read_submission(
            named, comp.id_column, comp.label_column, _classes(comp, sample, None), "the submission"
        )
    except KitError as error:
        return [str(error).removeprefix("the submission: ")]
    return []


def _read(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise KitError(f"{what} {path} not found: check the path")
    try:
        return read_csv_cells(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise KitError(f"{what} {path} is not a readable CSV ({one_line(error)}): check the file") from None


def score_target(path, answers_path, comp: Competition, metric=None) -> float:
    """The declared metric (or `metric`) of a submission against answers in the training CSV's form."""
    score, truth, given = target_rows(path, answers_path, comp, metric)
    return float(score(truth, given))


def target_rows(path, answers_path, comp: Competition, metric=None):
    """(the kind's scorer, the answers, the submission's rows for them), as `score_target` scores them."""
    path, answers_path = Path(path), Path(answers_path)
    submission, answers = _read(path, "submission"), _read(answers_path, "answers file")
    target, metric = target_of(comp), metric or comp.metric
    for frame, name in ((answers, f"answers file {answers_path}"), (submission, f"submission {path}")):
        if comp.id_column not in frame.columns:
            raise KitError(f"{name} has no column {comp.id_column!r}: expected the {comp.name} columns")
    if submission[comp.id_column].duplicated().any():
        raise KitError(f"submission {path} repeats ids: run `kaggle-kit validate` and keep one row per id")
    rows = pd.Index(submission[comp.id_column]).get_indexer(answers[comp.id_column])
    if (rows < 0).any():
        missing = answers[comp.id_column][rows < 0]
        raise KitError(
            f"{len(missing)} answered ids have no row in submission {path} ({quoted_examples(missing)}): "
            "the submission must cover every test id"
        )
    classes = list(comp.declared_classes)
    if comp.submission_kind == "probabilities":
        classes = [c for c in submission.columns if c != comp.id_column]
    target.check_metric(metric, f"score {path}")
    truth = target.read_answers(answers, comp.id_column, comp.label_column, classes, answers_path)
    given = target.read_submission(submission.iloc[rows], comp.id_column, comp.label_column, classes, path)
    return target.metrics[metric.name], truth, given


def scoring_metric(comp: Competition, name: str):
    """`score FILE --metric NAME` for a target kind: a metric that scores it, or a one-line refusal."""
    from ..competitions.target_metrics import target_metric_by_name

    chosen = target_metric_by_name(name)
    target_of(comp).check_metric(chosen, f"--metric {name}")
    return chosen
