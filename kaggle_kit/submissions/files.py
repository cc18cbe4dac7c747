"""Submission files: write (atomically) in the sample's exact format, validate, score.

Kaggle rejects a submission whose header differs from the sample's or that lacks an id, and it matches
rows by id, not order. So every file written here copies the sample's header line byte for byte and
lists the sample's ids in the sample's order; `validate` checks a file the way Kaggle would before it
is uploaded, and `score` computes the competition metric against a local answers file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions.bootstrap import RESAMPLES, Interval, bootstrap_interval
from ..competitions.metrics import metric_by_name
from ..competitions.registry import Competition
from ..core.atomic import atomic_output, fsync_folder
from ..core.errors import KitError
from ..data.labels import numeric_order
from ..data.sample_submission import (
    BOM,
    EXAMPLES_SHOWN,
    join_header,
    one_line,
    quoted_examples,
    read_csv_cells,
    read_header_line,
    read_sample,
    split_header,
)
from . import target_files

# Kaggle rescales rows itself, but a row this far from 1 means the probabilities came out wrong
# (e.g. a softmax over the batch axis instead of the class axis).
ROW_SUM_TOLERANCE = 1e-3


# --------------------------------------------------------------------------- writing


def _rows_in_sample_order(sample: pd.DataFrame, comp: Competition, ids: list[str]) -> np.ndarray:
    """For each sample row, the index of its prediction in `ids` (matched by value, not position)."""
    predicted = pd.Index([str(i) for i in ids])
    if predicted.has_duplicates:
        repeated = predicted[predicted.duplicated()].unique()
        raise KitError(
            f"predictions repeat {len(repeated)} ids ({quoted_examples(repeated)}): predict each test image once"
        )
    sample_ids = sample[comp.id_column].astype(str)
    order = predicted.get_indexer(sample_ids)
    missing = sample_ids[order < 0]
    if len(missing):
        raise KitError(
            f"{len(missing)} ids of the sample submission have no prediction ({quoted_examples(missing)}): "
            f"predict every test image of the same data folder the sample came from"
        )
    if len(predicted) > len(sample_ids):
        extra = predicted[~predicted.isin(sample_ids)]
        raise KitError(
            f"{len(extra)} predicted ids are not in the sample submission ({quoted_examples(extra)}): "
            f"the test images and the sample come from different data folders"
        )
    return order


def _normalised_rows(probs: np.ndarray) -> np.ndarray:
    # C order makes each row sum the same whatever column gather produced `probs`: reproducible bits
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    if bad.any():
        raise KitError(
            f"{int(bad.sum())} prediction rows hold NaN, infinite or negative probabilities (first: row "
            f"{int(np.flatnonzero(bad)[0])}): check the model's output (softmax of finite logits)"
        )
    sums = probs.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise KitError(
            f"{int((sums <= 0).sum())} prediction rows are all zero (first: row {int(np.flatnonzero(sums <= 0)[0])}): "
            f"check the model's output"
        )
    return probs / sums


def write_submission(
    path, comp: Competition, sample: pd.DataFrame, ids: list[str], probs: np.ndarray, classes: list[str]
) -> Path:
    """Write predictions in the sample's exact format; returns the path written.

    `probs[i]` holds the probabilities of `ids[i]` over `classes` (any order; columns are matched by
    name). Rows follow the sample's id order. Label competitions get the most probable class name;
    probability competitions get every sample column, each row rescaled to sum to 1, floats written
    at full (round-trip) precision. The header is the sample's header line, byte for byte.
    """
    path = Path(path)
    probs = np.asarray(probs)
    classes = [str(c) for c in classes]
    if probs.ndim != 2 or probs.shape != (len(ids), len(classes)):
        raise KitError(
            f"predictions for {path} have shape {probs.shape}, expected ({len(ids)} ids, {len(classes)} classes): "
            f"pass one row of class probabilities per id"
        )
    if len(set(classes)) != len(classes):
        raise KitError(f"the class list for {path} repeats a class: pass each class once, in the model's output order")
    order = _rows_in_sample_order(sample, comp, ids)
    columns = [str(c) for c in sample.columns]
    sample_ids = sample[comp.id_column].astype(str).to_numpy()

    if comp.submission_kind == "label":
        vocabulary = set(comp.declared_classes)
        unknown = [c for c in classes if vocabulary and c not in vocabulary]
        if unknown:
            raise KitError(
                f"classes {quoted_examples(unknown)} are not {comp.name} labels: "
                "the run's class list must come from the competition"
            )
        best = np.asarray(probs, dtype=np.float64)[order].argmax(axis=1)
        body = pd.DataFrame({columns[0]: sample_ids, columns[1]: np.asarray(classes, dtype=object)[best]})
    elif comp.submission_kind == "binary":
        if comp.positive_class not in classes:
            raise KitError(
                f"the model's classes {quoted_examples(classes)} lack the positive class {comp.positive_class!r}: "
                "set positive_class in the declaration to one of them"
            )
        rows = _normalised_rows(probs[order])[:, classes.index(comp.positive_class)]
        body = pd.DataFrame({columns[0]: sample_ids, columns[1]: rows})
    else:
        wanted = columns[1:]
        missing = [c for c in wanted if c not in classes]
        extra = [c for c in classes if c not in wanted]
        if missing or extra:
            raise KitError(
                f"the model's classes do not match the sample's columns (sample only: {quoted_examples(missing)}; "
                f"model only: {quoted_examples(extra)}): train with the classes taken from the sample submission"
            )
        position = {c: i for i, c in enumerate(classes)}
        rows = _normalised_rows(probs[order][:, [position[c] for c in wanted]])
        body = pd.DataFrame(rows, columns=wanted)
        body.insert(0, columns[0], sample_ids)

    header_line = sample.attrs.get("header_line") or join_header(columns)
    terminator = sample.attrs.get("line_terminator", "\n")
    with atomic_output(path, "submission-csv") as out:
        out.write((header_line + terminator).encode("utf-8"))
        # pandas writes floats as their shortest round-trip repr: nothing is lost to formatting
        body.to_csv(out, header=False, index=False, lineterminator=terminator, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- validating


@dataclass
class Validation:
    """What `validate` found: problems (empty when the file is valid) and the file's shape."""

    path: Path
    sample_path: Path
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    columns: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _header_problems(sample_line: str, found_line: str, expected: list[str], found: list[str]) -> list[str]:
    if found_line == sample_line:
        return []
    if found != expected:
        i = next((k for k, (a, b) in enumerate(zip(expected, found)) if a != b), min(len(expected), len(found)))
        want = repr(expected[i]) if i < len(expected) else "no column"
        got = repr(found[i]) if i < len(found) else "no column"
        problem = f"header differs from the sample at column {i + 1}: expected {want}, found {got}"
        if len(found) != len(expected):
            problem += f" ({len(found)} columns, the sample has {len(expected)})"
        elif sorted(found) == sorted(expected):
            problem += " (same columns in another order)"
        return [problem + ": copy the sample's header line exactly"]
    if found_line.startswith(BOM) != sample_line.startswith(BOM):
        which = "starts" if found_line.startswith(BOM) else "does not start"
        return [
            f"header bytes differ from the sample: the file {which} with a UTF-8 byte-order mark: "
            "save it as the sample is saved"
        ]
    return [
        f"header bytes differ from the sample though the column names match (quoting or spaces): "
        f"expected {sample_line[:80]!r}, found {found_line[:80]!r}: copy the sample's header line exactly"
    ]


def _id_problems(ids: pd.Series, sample_ids: pd.Series) -> list[str]:
    problems = []
    repeated = ids[ids.duplicated()]
    if len(repeated):
        problems.append(
            f"{len(repeated)} duplicate id rows ({quoted_examples(repeated.unique())}): keep one row per id"
        )
    missing = sample_ids[~sample_ids.isin(ids)]
    if len(missing):
        problems.append(
            f"{len(missing)} ids of the sample are missing ({quoted_examples(missing)}): "
            "Kaggle needs a row for every id"
        )
    extra = ids[~ids.isin(sample_ids)]
    if len(extra):
        problems.append(
            f"{len(extra)} ids are not in the sample ({quoted_examples(extra)}): "
            "remove them or predict the right test set"
        )
    return problems


def _label_problems(frame: pd.DataFrame, id_position: int, label_position: int, vocabulary: list[str]) -> list[str]:
    labels = frame.iloc[:, label_position]
    bad = ~labels.isin(vocabulary)
    if not bad.any():
        return []
    ids = frame.iloc[:, id_position][bad]
    values = labels[bad]
    shown = ", ".join(f"{v!r} (id {i})" for v, i in zip(values.head(EXAMPLES_SHOWN), ids.head(EXAMPLES_SHOWN)))
    extra = int(bad.sum()) - min(int(bad.sum()), EXAMPLES_SHOWN)
    if extra:
        shown = shown + f" and {extra} more"
    return [f"{int(bad.sum())} labels are not class names ({shown}): use exactly {', '.join(vocabulary)}"]


def _probability_values(text: pd.DataFrame) -> np.ndarray:
    """The cells as float64, NaN where a cell is not a number (numpy's float parse first: it is fast)."""
    try:
        return text.to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        return text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)


def _probability_problems(
    frame: pd.DataFrame, id_position: int, class_positions: list[int], names: list[str], check_sums: bool
) -> list[str]:
    ids = frame.iloc[:, id_position]
    text = frame.iloc[:, class_positions]
    values = _probability_values(text)
    unparsed = np.isnan(values)
    # what an unparsed cell held: nothing, the word NaN, or something else (only those cells are inspected)
    empty = np.zeros_like(unparsed)
    spelled_nan = np.zeros_like(unparsed)
    rows, cols = np.nonzero(unparsed)
    if len(rows):
        cells_text = np.array([str(text.iat[r, c]).strip().lower() for r, c in zip(rows, cols)], dtype=object)
        empty[rows, cols] = cells_text == ""
        spelled_nan[rows, cols] = np.isin(cells_text, ["nan", "-nan", "+nan"])

    def cells(mask: np.ndarray, what: str, fix: str) -> list[str]:
        count = int(mask.sum())
        if not count:
            return []
        rows, cols = np.nonzero(mask)
        shown = [f"id {ids.iloc[r]} column {names[c]}" for r, c in zip(rows[:EXAMPLES_SHOWN], cols[:EXAMPLES_SHOWN])]
        more = f" and {count - len(shown)} more" if count > len(shown) else ""
        return [f"{count} {what} ({'; '.join(shown)}{more}): {fix}"]

    problems = []
    problems += cells(unparsed & ~empty & ~spelled_nan, "values are not numbers", "write plain decimal probabilities")
    problems += cells(empty, "values are empty", "write a probability in every cell")
    problems += cells(unparsed & spelled_nan, "values are NaN", "check the model's output for NaN")
    problems += cells(np.isinf(values), "values are infinite", "check the model's output (softmax of finite logits)")
    finite_cells = np.isfinite(values)  # an infinity is reported once, as infinite
    problems += cells(finite_cells & (values < 0), "probabilities are negative", "write probabilities in [0, 1]")
    problems += cells(finite_cells & (values > 1), "probabilities are above 1", "write probabilities in [0, 1]")

    if not check_sums:  # with class columns missing, every row sum would be off: the header problem says why
        return problems
    finite = np.isfinite(values).all(axis=1)
    sums = values.sum(axis=1)
    off = finite & (np.abs(sums - 1) > ROW_SUM_TOLERANCE)
    if off.any():
        rows = np.flatnonzero(off)
        shown = ", ".join(f"id {ids.iloc[r]} sums to {sums[r]:.6g}" for r in rows[:EXAMPLES_SHOWN])
        more = f" and {len(rows) - EXAMPLES_SHOWN} more" if len(rows) > EXAMPLES_SHOWN else ""
        problems.append(
            f"{len(rows)} rows do not sum to 1 within {ROW_SUM_TOLERANCE:g} ({shown}{more}): Kaggle rescales each row, "
            f"but this signals a bug (softmax over the wrong axis?)"
        )
    return problems


def inspect_submission(path, comp: Competition, sample_path) -> Validation:
    """Check a submission file the way Kaggle would, against the sample submission.

    Raises KitError only when the sample itself is unusable; every fault of the file becomes a problem.
    """
    path, sample_path = Path(path), Path(sample_path)
    sample = read_sample(sample_path, comp)
    result = Validation(path=path, sample_path=sample_path)
    problems = result.problems

    if not path.is_file():
        problems.append(f"cannot read {path}: {'it is a folder' if path.is_dir() else 'no such file'}")
        return result
    if path.stat().st_size == 0:
        problems.append("the file is empty (0 bytes): write the submission again")
        return result
    try:
        found_line, terminator = read_header_line(path)
    except UnicodeDecodeError:
        problems.append(
            "the file is not a CSV (not UTF-8 text): submit the .csv written by predict, not an archive or image"
        )
        return result
    except OSError as error:
        problems.append(f"cannot read {path}: {error.strerror or error}")
        return result

    sample_line = sample.attrs["header_line"]
    expected = [str(c) for c in sample.columns]
    found = split_header(found_line)
    problems += _header_problems(sample_line, found_line, expected, found)
    if terminator == "\r":
        problems.append("the lines end in CR only (old Mac line endings): save the file with LF or CRLF line endings")

    try:
        frame = read_csv_cells(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        problems.append(
            f"the file is not a valid CSV ({one_line(error)}): write one row per id with the sample's columns"
        )
        return result
    # positions, not names: a repeated column name would otherwise be ambiguous
    frame.columns = range(frame.shape[1])
    result.rows, result.columns = frame.shape

    if len(frame) != len(sample):
        problems.append(f"{len(frame)} rows, the sample has {len(sample)}: write one row per sample id")

    if comp.id_column not in found:
        problems.append(f"no '{comp.id_column}' column: ids cannot be checked")
        return result
    id_position = found.index(comp.id_column)
    problems += _id_problems(frame[id_position], sample[comp.id_column].astype(str))

    if comp.target != "label":  # label sets, values, grades: their kind reads the values (submissions/target_files)
        problems += target_files.target_problems(frame, found, comp, sample) if not problems else []
    elif comp.submission_kind == "label":
        if comp.label_column in found and comp.declared_classes:
            problems += _label_problems(frame, id_position, found.index(comp.label_column), list(comp.declared_classes))
    elif comp.submission_kind == "binary":
        if comp.label_column in found:
            column = found.index(comp.label_column)
            problems += _probability_problems(frame, id_position, [column], [comp.label_column], check_sums=False)
    else:
        present = [c for c in expected[1:] if c in found]
        if present:
            positions = [found.index(c) for c in present]
            problems += _probability_problems(frame, id_position, positions, present, len(present) == len(expected) - 1)
    return result


def validate(path, comp: Competition, sample_path) -> list[str]:
    """Every problem Kaggle would reject or a bug would cause, one line each; empty when valid."""
    return inspect_submission(path, comp, sample_path).problems


def write_checked_submission(
    path, comp: Competition, sample: pd.DataFrame, sample_path, ids: list[str], probs: np.ndarray, classes: list[str]
) -> Validation:
    """`write_submission`, then `inspect_submission` on the written bytes, and only then the final name.

    The file is written under a hidden staging name in the same folder, checked as Kaggle would check
    it, and renamed over `path` only when it passes; so a file already at `path` is replaced only by a
    valid one. A failing file is kept beside it as `<name>.invalid.csv` for inspection, and a KitError
    names its first problem. An interrupt at any point leaves no partial file under either name.
    """
    path = Path(path)
    staged = path.with_name(f".{path.stem}.{os.getpid()}.staged{path.suffix}")
    try:
        write_submission(staged, comp, sample, ids, probs, classes)
        result = inspect_submission(staged, comp, sample_path)
        if not result.ok:
            rejected = path.with_name(f"{path.stem}.invalid{path.suffix}")
            os.replace(staged, rejected)
            more = f" (and {len(result.problems) - 1} more problems)" if len(result.problems) > 1 else ""
            raise KitError(
                f"the predictions written for {path} fail validation: {result.problems[0]}{more}; "
                f"kept as {rejected} for inspection, {path} left as it was - this is a bug, please report it"
            )
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    fsync_folder(path.parent)
    result.path = path
    return result


# --------------------------------------------------------------------------- scoring


def _read_for_scoring(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise KitError(f"{what} {path} not found: check the path")
    try:
        return read_csv_cells(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise KitError(f"{what} {path} is not a readable CSV ({one_line(error)}): check the file") from None


def _undeclared_classes(comp: Competition, submission: pd.DataFrame, answers: pd.DataFrame) -> list[str]:
    """Classes when the declaration lists none: the labels seen (grades in numeric order), the positive class of a
    binary target, or a probability submission's own columns."""
    if comp.submission_kind == "probabilities":
        return [c for c in submission.columns if c != comp.id_column]
    seen = set(answers[comp.label_column])
    if comp.submission_kind == "label":
        seen |= set(submission[comp.label_column])
    elif comp.positive_class is not None:
        seen.add(comp.positive_class)
    return numeric_order(seen)


def _binary_probabilities(path: Path, column: pd.Series, classes: list[str], comp: Competition, ids) -> np.ndarray:
    """(n, 2) probabilities from one column holding the positive class's probability."""
    if len(classes) != 2 or comp.positive_class not in classes:
        raise KitError(
            f"a binary target needs two classes including positive_class {comp.positive_class!r}, the answers hold "
            f"{quoted_examples(classes)}: use the answers of {comp.name} or set positive_class in the declaration"
        )
    positive = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    broken = ~np.isfinite(positive) | (positive < 0) | (positive > 1)
    if broken.any():
        raise KitError(
            f"submission {path} has {int(broken.sum())} scored rows whose probability is missing, not a number or "
            f"outside [0, 1] (first: id {ids.iloc[int(np.flatnonzero(broken)[0])]}): run `kaggle-kit validate`"
        )
    probs = np.empty((len(positive), 2))
    at = classes.index(comp.positive_class)
    probs[:, at], probs[:, 1 - at] = positive, 1 - positive
    return probs


def scoring_metric(comp: Competition, name: str) -> Competition:
    """`score FILE --metric NAME`: `comp` scored by another metric, refused where it cannot score the submissions
    (log loss of one label per row; QWK of classes that are names, not grades)."""
    if comp.target != "label":
        return dataclasses.replace(comp, metric=target_files.scoring_metric(comp, name))
    chosen = metric_by_name(name)
    misfit = comp.metric_misfit(chosen)
    if misfit:
        raise KitError(
            f"--metric {name}: {misfit}; drop --metric ({comp.name} is scored by {comp.metric.key}) or pick one "
            f"that fits: {', '.join(comp.fitting_metrics())}"
        )
    return dataclasses.replace(comp, metric=chosen)


def score(path, answers_path, comp: Competition, classes: list[str] | None = None) -> float:
    """The competition metric of a submission against an answers file (`id` + the label column): see
    `scored_rows`."""
    metric, truth, given = scored_rows(path, answers_path, comp, classes)
    return float(metric(truth, given))


def score_interval(path, answers_path, comp: Competition) -> Interval:
    """`score` with its 95% bootstrap interval over the answered rows and their number: a public or private
    leaderboard share is a sample of the test set as a validation split is of the training set. Metrics that are
    no mean over rows (AUC, MAP@5, F1) are rescored once a resample: past 2,000 rows fewer resamples (200 at
    10,000 rows) keep that to seconds, a little noisier in the interval's ends."""
    metric, truth, given = scored_rows(path, answers_path, comp)
    resamples = min(RESAMPLES, max(200, 2_000_000 // max(len(truth), 1)))
    return bootstrap_interval(metric, truth, given, resamples=resamples)


def scored_rows(path, answers_path, comp: Competition, classes: list[str] | None = None):
    """(metric, answers, the submission's rows for them) of a submission against an answers file.

    Rows are matched by id. Submission ids without an answer (CIFAR-10's unscored test images) are
    ignored; an answer without a submission row is an error. Probabilities get Kaggle's treatment:
    rows rescaled to sum 1, then clipped to [1e-15, 1 - 1e-15]. `classes` orders the metric's class
    indices; by default the competition's declared labels or the submission's class columns.
    """
    if comp.target != "label":  # label sets, values, grades: scored in their kind's form
        return target_files.target_rows(path, answers_path, comp)
    path, answers_path = Path(path), Path(answers_path)
    submission = _read_for_scoring(path, "submission")
    answers = _read_for_scoring(answers_path, "answers file")
    rows = _matched_rows(path, submission, answers_path, answers, comp)
    answer_ids = answers[comp.id_column]
    # the declared labels first: a misspelt class column is then the submission's fault, named as such below
    from_submission = classes is None and not comp.declared_classes and comp.submission_kind == "probabilities"
    if classes is None:
        classes = list(comp.declared_classes) or _undeclared_classes(comp, submission, answers)
    classes = [str(c) for c in classes]
    misfit = None if comp.declared_classes else comp.metric_misfit(comp.metric, classes)
    if misfit:  # classes known only now, from the files: the check `scoring_metric` could not make
        raise KitError(f"{misfit}: pass --metric with one that fits ({', '.join(comp.fitting_metrics(classes))})")
    index = {c: i for i, c in enumerate(classes)}
    truth = answers[comp.label_column].map(index)
    if truth.isna().any():
        unknown = answers[comp.label_column][truth.isna()].unique()
        if from_submission:
            raise KitError(
                f"submission {path} has no column for the answers' labels {quoted_examples(unknown)}: its "
                f"header must name every class as the sample does - run `kaggle-kit validate {path}`"
            )
        raise KitError(
            f"answers file {answers_path} has labels {quoted_examples(unknown)} outside the class list: "
            f"use the answers of {comp.name}"
        )
    labels = truth.to_numpy(dtype=np.int64)
    probs = _scored_probabilities(path, submission, rows, answer_ids, classes, comp, index)
    # the metric itself applies Kaggle's row rescaling and clipping
    return comp.metric, labels, probs


def _matched_rows(path: Path, submission, answers_path: Path, answers, comp: Competition) -> np.ndarray:
    """For each answer, the submission row of its id: both files checked for their columns and repeated ids."""
    for frame, name, needed in (
        (answers, f"answers file {answers_path}", [comp.id_column, comp.label_column]),
        (
            submission,
            f"submission {path}",
            [comp.id_column] + ([comp.label_column] if comp.submission_kind != "probabilities" else []),
        ),
    ):
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            raise KitError(
                f"{name} has no column {quoted_examples(absent)} (found {quoted_examples(list(frame.columns))}): "
                f"expected the {comp.name} columns {', '.join(needed)}"
            )

    if len(answers) == 0:
        raise KitError(f"answers file {answers_path} has no rows: nothing to score")
    sub_ids = pd.Index(submission[comp.id_column])
    if sub_ids.has_duplicates:
        raise KitError(
            f"submission {path} repeats ids ({quoted_examples(sub_ids[sub_ids.duplicated()].unique())}): "
            "run `kaggle-kit validate` and keep one row per id"
        )
    answer_ids = answers[comp.id_column]
    if answer_ids.duplicated().any():
        raise KitError(
            f"answers file {answers_path} repeats ids "
            f"({quoted_examples(answer_ids[answer_ids.duplicated()].unique())}): "
            "keep one answer per id"
        )
    rows = sub_ids.get_indexer(answer_ids)
    if (rows < 0).any():
        missing = answer_ids[rows < 0]
        raise KitError(
            f"{len(missing)} answered ids have no row in submission {path} ({quoted_examples(missing)}): "
            f"the submission must cover every test id"
        )
    return rows


def _scored_probabilities(path: Path, submission, rows, answer_ids, classes: list[str], comp: Competition, index):
    """The submission's rows (in the answers' order) as probabilities over `classes`: a label is one-hot, with a
    column of its own for a label outside them; probability columns are checked."""
    if comp.submission_kind == "label":
        # a label outside the vocabulary is simply wrong: it gets its own column no answer points at
        predicted = submission[comp.label_column].iloc[rows].map(index).fillna(len(classes)).to_numpy(dtype=np.int64)
        probs = np.zeros((len(rows), len(classes) + 1))
        probs[np.arange(len(rows)), predicted] = 1.0
    elif comp.submission_kind == "binary":
        probs = _binary_probabilities(path, submission[comp.label_column].iloc[rows], classes, comp, answer_ids)
    else:
        columns = [c for c in submission.columns if c != comp.id_column]
        if sorted(columns) != sorted(classes):
            missing = [c for c in classes if c not in columns]
            extra = [c for c in columns if c not in classes]
            raise KitError(
                f"submission {path} columns do not match the classes (missing {quoted_examples(missing)}; "
                f"unexpected {quoted_examples(extra)}): run `kaggle-kit validate` against the sample"
            )
        probs = submission[classes].iloc[rows].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        broken = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs.sum(axis=1) <= 0)
        if broken.any():
            first = answer_ids.iloc[int(np.flatnonzero(broken)[0])]
            raise KitError(
                f"submission {path} has {int(broken.sum())} scored rows with missing, non-numeric, infinite, negative "
                f"or all-zero probabilities (first: id {first}): run `kaggle-kit validate` and fix the file"
            )
    return probs
