"""The one reader of a competition's sample submission: its exact header line, its ids, its classes.

Both the data layer (test ids in the sample's order, class columns) and the submission writer and
validator (header copied byte for byte) read the sample through `read_sample`, so they can never
disagree about what the sample says. Ids are kept exactly as written - never stripped, never parsed as
numbers (Dog Breed's all-digit hex ids would lose their leading zeros) - and an id with spaces around
it is rejected, because Kaggle matches ids as exact strings.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions.registry import Competition
from ..core.errors import KitError

BOM = "\ufeff"
EXAMPLES_SHOWN = 3  # of each kind of problem, the first few are named; the rest are counted


# --------------------------------------------------------------------------- message helpers


def quoted_examples(values, limit: int = EXAMPLES_SHOWN) -> str:
    """The first few values, quoted so that blanks and stray spaces show, and how many more there are."""
    values = [str(v) for v in values]
    if not values:
        return "none"
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def one_line(error: BaseException) -> str:
    """An exception's text squeezed onto one short line (pandas' parser errors span several)."""
    text = " ".join(str(error).split())
    return text[:200] if text else type(error).__name__


# --------------------------------------------------------------------------- header lines


def read_header_line(path: Path) -> tuple[str, str]:
    """The first line of `path` exactly as written (BOM kept) and its line terminator: "\\r\\n", "\\n", "" (a
    one-line file) or "\\r" (old Mac line endings, where the whole file reads as one binary line)."""
    with open(path, "rb") as f:
        raw = f.readline()
    if raw.endswith(b"\r\n"):
        terminator = "\r\n"
    elif raw.endswith(b"\n"):
        terminator = "\n"
    else:
        terminator = ""
    line = raw[: len(raw) - len(terminator)]
    if b"\r" in line:
        line, terminator = line.split(b"\r", 1)[0], "\r"
    return line.decode("utf-8"), terminator


def split_header(line: str) -> list[str]:
    try:
        return next(csv.reader([line.removeprefix(BOM)]), [])
    except csv.Error:  # a stray quote or control character: the plain comma split still names the columns
        return line.removeprefix(BOM).split(",")


_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def read_csv_cells(path: Path) -> pd.DataFrame:
    """Every cell of a CSV as the string written ("" for an empty one), the header row as column names.

    A row with more fields than the header is an error that names the line. (pandas' default would instead
    take the first column of such a file for an index, and every id would be read as a probability.)
    """
    try:
        frame = pd.read_csv(path, dtype=str, header=None, na_filter=False, encoding="utf-8-sig")
    except pd.errors.ParserError as error:
        ragged = _RAGGED.search(str(error))
        if not ragged:
            raise
        header, line, fields = (int(n) for n in ragged.groups())
        trailing = " (a trailing comma?)" if fields == header + 1 else ""
        raise pd.errors.ParserError(f"line {line} has {fields} fields, the header {header}{trailing}") from None
    columns = [str(c) for c in frame.iloc[0]] if len(frame) else []
    frame = frame.iloc[1:].reset_index(drop=True).fillna("")
    frame.columns = columns
    return frame


def short_header(columns: list[str], shown: int = 6) -> str:
    """A header for a one-line message: the first few columns and how many there are."""
    if not columns:
        return "<empty>"
    text = ",".join(columns[:shown])
    return text + (f",... ({len(columns)} columns)" if len(columns) > shown else "")


def join_header(columns) -> str:
    """A header line as a CSV writer would quote it (for samples not read by `read_sample`)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(list(columns))
    return buffer.getvalue()


def fixed_header(comp: Competition) -> list[str] | None:
    """The exact header of a label or binary submission, [id, label]; None for probability submissions, whose
    class columns (and their order) only the sample file itself can say."""
    if comp.submission_kind in ("label", "binary"):
        return [comp.id_column, comp.label_column]
    return None


def _check_sample_header(path: Path, comp: Competition, columns: list[str]) -> None:
    def wrong(why: str, expected: str) -> KitError:
        # a user's declaration is as likely wrong as the download: name the file and the keys that set the header
        declared = "" if comp.source == "built-in" else f", or fix [labels] id_column/label_column in {comp.source}"
        return KitError(
            f"{path}: header is {short_header(columns)} but expected {expected} ({why}); "
            f"re-download the {comp.slug} data or pass the right --competition{declared}"
        )

    if not columns or columns[0] != comp.id_column:
        raise wrong(f"first column must be '{comp.id_column}'", f"{comp.id_column},...")
    fixed = fixed_header(comp)
    if fixed is not None:
        if columns != fixed:
            raise wrong(f"a {comp.submission_kind} submission", ",".join(fixed))
        return
    classes = columns[1:]
    if not classes:
        raise wrong("no class columns", f"{comp.id_column},<one column per class>")
    duplicated = sorted({c for c in classes if classes.count(c) > 1})
    if duplicated:
        raise wrong(f"repeated class columns {', '.join(duplicated)}", "each class once")
    if any(not c.strip() for c in classes):
        raise wrong("a blank class column", "a name in every column")
    if comp.declared_classes and set(classes) != set(comp.declared_classes):
        missing = sorted(set(comp.declared_classes) - set(classes))
        extra = sorted(set(classes) - set(comp.declared_classes))
        raise wrong(
            f"missing {quoted_examples(missing)}; unexpected {quoted_examples(extra)}",
            f"{comp.id_column} and the {len(comp.declared_classes)} declared classes",
        )


# --------------------------------------------------------------------------- the sample


def read_sample(path, comp: Competition) -> pd.DataFrame:
    """The sample submission as a DataFrame with every id a string exactly as in the file.

    The header is checked against `comp`'s declaration. `attrs["header_line"]` and
    `attrs["line_terminator"]` keep the raw first line so that written files can copy it byte for byte.
    """
    path = Path(path)
    if not path.is_file():
        raise KitError(
            f"sample submission {path} not found: point --data-dir (or --sample) at the {comp.slug} download"
        )
    try:
        header_line, terminator = read_header_line(path)
    except UnicodeDecodeError:
        raise KitError(f"sample submission {path} is not UTF-8 text: re-download the {comp.slug} data") from None
    if not header_line.removeprefix(BOM).strip():
        raise KitError(f"sample submission {path} is empty: re-download the {comp.slug} data")
    if terminator == "\r":
        raise KitError(f"sample submission {path} has old Mac line endings (CR only): re-download the {comp.slug} data")
    columns = split_header(header_line)
    _check_sample_header(path, comp, columns)

    try:
        frame = read_csv_cells(path)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise KitError(
            f"sample submission {path} is not a readable CSV ({one_line(error)}): re-download the {comp.slug} data"
        ) from None
    ids = frame[comp.id_column]
    if len(frame) == 0:
        raise KitError(f"sample submission {path} has a header but no rows: re-download the {comp.slug} data")
    stripped = ids.str.strip()
    blank = stripped == ""
    if blank.any():
        line = int(np.flatnonzero(blank.to_numpy())[0]) + 2
        raise KitError(f"sample submission {path} has an empty id on line {line}: re-download the {comp.slug} data")
    padded = stripped != ids
    if padded.any():
        # Kaggle compares ids as exact strings, so a padded id would never match its image
        line = int(np.flatnonzero(padded.to_numpy())[0]) + 2
        raise KitError(
            f"sample submission {path} has spaces around the id {ids[padded].iloc[0]!r} on line {line} "
            f"({int(padded.sum())} such ids): remove them or re-download the {comp.slug} data"
        )
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise KitError(
            f"sample submission {path} repeats {len(duplicated)} ids ({quoted_examples(duplicated.unique())}): "
            f"re-download the {comp.slug} data"
        )
    frame.attrs["header_line"] = header_line
    frame.attrs["line_terminator"] = terminator or "\n"
    return frame


def sample_classes(sample: pd.DataFrame, comp: Competition) -> list[str]:
    """The classes in model-output order: the sample's columns (Dog Breed: always take the order from the
    sample itself) or the competition's declared labels (CIFAR-10, whose sample holds one label column)."""
    if comp.class_source == "sample_columns":
        return [str(c) for c in sample.columns[1:]]
    return list(comp.declared_classes)


def sample_ids(sample: pd.DataFrame, comp: Competition) -> list[str]:
    """The test ids in the sample's row order, exactly as written."""
    return sample[comp.id_column].astype(str).tolist()
