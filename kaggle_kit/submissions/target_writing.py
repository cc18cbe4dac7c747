"""Writing a submission of a target other than one label per image: the sample's header and id order, the
target kind's columns, checked as Kaggle would check it before it takes its name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions.registry import Competition
from ..competitions.targets import target_of
from ..core.atomic import atomic_output
from ..core.errors import KitError
from ..data.sample_submission import join_header
from .files import _rows_in_sample_order, inspect_submission


def write_target_submission(
    path, comp: Competition, sample: pd.DataFrame, sample_path, ids: list[str], values, classes: list[str], fitted
) -> Path:
    """Values (the kind's form, rows of `ids`) written in the sample's id order and header; the file is checked
    by `files.inspect_submission` before it takes `path`'s name (a failing file names its first problem)."""
    path = Path(path)
    order = _rows_in_sample_order(sample, comp, ids)
    columns = [str(c) for c in sample.columns]
    body = pd.DataFrame({columns[0]: sample[comp.id_column].astype(str).to_numpy()})
    written = target_of(comp).submission_columns(np.asarray(values)[order], classes, fitted, comp.label_column)
    for name in columns[1:]:
        body[name] = written[name]
    header_line = sample.attrs.get("header_line") or join_header(columns)
    terminator = sample.attrs.get("line_terminator", "\n")
    staged = path.with_name(f".{path.stem}.{os.getpid()}.staged{path.suffix}")
    try:
        with atomic_output(staged) as out:
            out.write((header_line + terminator).encode("utf-8"))
            body.to_csv(out, header=False, index=False, lineterminator=terminator, encoding="utf-8")
        result = inspect_submission(staged, comp, sample_path)
        if not result.ok:
            raise KitError(f"the predictions written for {path} fail validation: {result.problems[0]}: a bug")
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return path
