"""`init` for downloads whose answer is not one label per image: which target kind, read from the files.

The train CSV and the sample say it (kaggle-facts §10): label columns of 0/1 shared with the sample, where a row
may hold several 1s or none -> multilabel, one probability per column (RANZCR); one answer column whose cells
hold space-separated labels -> multilabel label sets (Plant Pathology 2021); one column of whole numbers scored
by QWK, named as a grade (`GRADE_WORDS`: diagnosis, isup_grade, level...) and holding every grade 0..n-1 -> ordinal,
trained as regression with cut points (APTOS, PANDA; `ordinal_reason` says why, and `--target label` keeps them
classes); other whole numbers scored by QWK stay classes (QWK at fitted thresholds), as integer class ids must;
a numeric column scored by RMSE, or holding fractions -> regression (Pawpularity). `--target` names the kind
where the files leave a choice; `label` keeps today's path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..competitions.metrics import Metric
from ..competitions.registry import Competition
from ..competitions.targets import ACCEPTED, DEFAULT_METRICS, KINDS
from ..core import progress
from ..core.errors import KitError
from ..data.layout import open_layout, small_file, work_dir_for
from ..data.sample_submission import read_csv_cells
from .starter_recipes import probe, recipes_for

MAX_GRADES = 10  # more distinct whole numbers than this read as a value, not grades
# a column named with one of these words holds grades (APTOS `diagnosis`, PANDA `isup_grade`, Diabetic Retinopathy
# `level`, severity scores); a plain `label`, `class` or `category` of integer ids never does
GRADE_WORDS = ("grade", "diagnosis", "isup", "level", "score", "severity", "stage", "rating")


def _train_csv(root: Path, comp: Competition, ids: set[str]) -> tuple[str, pd.DataFrame] | None:
    """The CSV keyed by the sample's id column whose ids are not the test ids: the training labels."""
    for path in sorted(root.glob("*.csv"), key=lambda p: ("train" not in p.name.lower(), p.name)):
        if path.name == comp.sample_file:
            continue
        frame = read_csv_cells(small_file(root, comp, path.name, work_dir_for(comp, root)))
        if comp.id_column in frame.columns and not set(frame[comp.id_column]) & ids and len(frame.columns) > 1:
            return path.name, frame
    return None


def _kind_of(frame: pd.DataFrame, columns: list[str], metric: Metric) -> str:
    if len(columns) > 2:
        cells = frame[columns[1:]] if set(columns[1:]) <= set(frame.columns) else None
        if cells is not None and cells.isin(["0", "1"]).all().all():
            ones = cells.astype(int).sum(axis=1)
            return "label" if (ones == 1).all() else "multilabel"
        return "label"
    if columns[1] not in frame.columns:
        return "label"
    if metric.name == "map_at_k":  # ranked answers: the sample's column holds several ids a row
        return "topk"
    answers = frame[columns[1]].astype(str)
    if answers.str.strip().str.contains(" ").any():
        return "multilabel"
    numbers = pd.to_numeric(answers, errors="coerce")
    if numbers.isna().any():
        return "label"
    if metric.name == "rmse" or bool((numbers % 1 != 0).any()):
        return "regression"
    if metric.name == "qwk" and numbers.nunique() <= MAX_GRADES and numbers.min() >= 0:
        if ordinal_reason(columns[1], numbers):  # said in init's printout (describe_target)
            return "ordinal"
        # whole numbers not named as grades, or with a gap, may be class ids: they stay classes
        progress.say("note: the answers are integer grades: pass --target ordinal to train them as regression")
    return "label"


def ordinal_reason(column: str, numbers: pd.Series) -> str | None:
    """Why a QWK-scored column of whole numbers holds ordered grades, or None where it may hold class ids: its
    name says grade (`GRADE_WORDS`) and it holds every whole number from 0 to its largest, at least 3 of them."""
    words = [w for w in GRADE_WORDS if w in column.lower()]
    grades = np.unique(numbers.to_numpy(dtype=np.int64))
    contiguous = len(grades) >= 3 and grades[0] == 0 and grades[-1] == len(grades) - 1
    if not words or not contiguous:
        return None
    return f"column {column!r} is named as a grade ({words[0]!r}) and holds every grade 0..{grades[-1]} scored by QWK"


def infer_target(
    root: Path, comp: Competition, sample: pd.DataFrame, metric: Metric, target: str | None, k: int | None = None
) -> tuple[Competition, object, list] | None:
    """(declaration, layout, image sizes) for a non-label target, or None where the download is one label per
    image (today's inference then goes on). `k`: a top-k target's answers a row (default: the sample's most)."""
    if target is not None and target not in KINDS:
        raise KitError(f"--target {target}: choose one of {', '.join(KINDS)}")
    columns = [str(c) for c in sample.columns]
    found = _train_csv(root, comp, set(sample[columns[0]]))
    kind = target or (_kind_of(found[1], columns, metric) if found else "label")
    if kind == "label":
        return None
    if found is None:
        raise KitError(f"{root}: no train CSV keyed by {comp.id_column!r} holds the {kind} answers; --target label?")
    name, frame = found
    form = "probabilities" if len(columns) > 2 else "label"
    comp = replace(
        comp,
        target=kind,
        label_source="csv",
        label_file=name,
        label_column="" if form == "probabilities" else columns[1],
        submission_kind=form,
        class_source="sample_columns" if form == "probabilities" else "declared",
    )
    if kind == "topk":
        comp = _top_k(comp, sample, frame, k)
    if kind == "regression" and comp.value_range is None:  # what the values are trained and clipped on
        values = pd.to_numeric(frame[comp.label_column], errors="coerce").dropna()
        comp = replace(comp, value_range=(float(values.min()), float(values.max()))) if len(values) else comp
    comp = replace(comp, metric=_metric(comp, metric), declared_classes=_classes(comp, frame, kind))
    layout = open_layout(comp, root)
    sizes, mean_std = probe(layout)
    recipes, augmentations, settings = recipes_for(sizes, mean_std)
    comp = replace(comp, recipes=recipes, default_recipe=next(iter(recipes)), augmentations=augmentations, **settings)
    layout = open_layout(comp, root)  # exactly as `train` will read it
    if comp.submission_kind == "probabilities":  # the sample's label columns: what `sample` draws
        comp = replace(comp, declared_classes=tuple(layout.classes))
    return comp, layout, sizes


def _top_k(comp: Competition, sample: pd.DataFrame, frame: pd.DataFrame, k: int | None) -> Competition:
    """k from --k or the sample's longest answer; the new class: a training label named new_* (new_whale)."""
    k = k or int(sample[comp.label_column].astype(str).str.split().str.len().max())
    if k < 1:
        raise KitError(f"--k {k}: a top-k answer ranks at least 1 class")
    new = sorted({v for v in frame[comp.label_column].astype(str) if v.lower().startswith("new")})
    return replace(comp, top_k=k, new_class=new[0] if len(new) == 1 else None)


def _classes(comp: Competition, frame: pd.DataFrame, kind: str) -> tuple[str, ...]:
    if comp.submission_kind == "probabilities":
        return ()
    answers = frame[comp.label_column].astype(str)
    if kind == "multilabel":
        return tuple(sorted({t for s in answers for t in s.split()}))
    if kind == "ordinal":
        return tuple(str(g) for g in range(int(pd.to_numeric(answers).max()) + 1))
    if kind == "topk":
        return tuple(sorted({a for a in answers if a != comp.new_class}))
    return ()


def _metric(comp: Competition, metric: Metric) -> Metric:
    """The metric given, where it scores this kind; else a one-line refusal naming those that do."""
    form = f"multilabel-{'columns' if comp.submission_kind == 'probabilities' else 'set'}"
    key = form if comp.target == "multilabel" else comp.target
    if metric in ACCEPTED[key]:
        return metric
    names = ", ".join(m.key for m in ACCEPTED[key])
    raise KitError(
        f"--metric {metric.key} does not score a {comp.target} target ({DEFAULT_METRICS[key].label} is usual): "
        f"pass --metric with one of {names}, or --target label if each image has one label"
    )


def describe_target(comp: Competition, layout, sizes) -> list[str]:
    """What `init` inferred for a non-label target, one line each."""
    truth = np.asarray(layout.train_labels)
    if truth.ndim == 2:
        spread = ", ".join(f"{c} {int(n)}" for c, n in zip(layout.classes, truth.sum(axis=0)))
        per_row = np.bincount(truth.sum(axis=1))
        answer = f"labels ({len(layout.classes)}), images holding each: {spread}; labels a row: " + ", ".join(
            f"{k}: {int(n)}" for k, n in enumerate(per_row) if n
        )
    elif comp.target == "topk":
        counts = np.bincount(truth, minlength=len(layout.classes) + 1)
        answer = f"{len(layout.classes)} classes ({int((counts[:-1] == 1).sum())} with one image)"
        answer += f", {int(counts[-1])} images of new class {comp.new_class!r}" if comp.new_class else ", no new class"
    elif comp.target == "ordinal":
        answer = "grades: " + ", ".join(f"{g} {int(n)}" for g, n in enumerate(np.bincount(truth)))
    else:
        answer = f"values {truth.min():g}..{truth.max():g} (mean {truth.mean():.3g})"
    held = {"multilabel": "space-separated label sets", "ordinal": "an integer grade"}.get(comp.target, "one number")
    held = f"up to {comp.top_k} ranked classes, space-separated" if comp.target == "topk" else held
    form = f"column {comp.label_column!r}: {held}"
    if comp.submission_kind == "probabilities":
        form = "one probability column per label"
    frame = read_csv_cells(layout.labels_path)
    used = {comp.id_column, comp.label_column, *layout.classes}
    others = [c for c in frame.columns if c not in used]
    heights = sorted(h for h, _ in sizes) or [0]
    why = ordinal_reason(comp.label_column, pd.Series(truth)) if comp.target == "ordinal" else None
    return [
        f"target: ordinal, as {why} (--target label trains them as classes)"
        if why
        else f"target: {comp.target} (override with --target)",
        f"images: {comp.train_dir}/ ({len(layout.train.ids)}) and {comp.test_dir}/ ({len(layout.test.ids)})",
        f"labels: {comp.label_file} keyed by {comp.id_column!r}; {answer}",
        f"other train columns: {', '.join(others) if others else 'none'}",
        f"submission: {form}",
        f"metric: {comp.metric.label} - {comp.metric.direction}",
        f"image heights: {heights[0]}..{heights[-1]} px",
        f"recipe: {comp.default_recipe}; augmentations {', '.join(comp.augmentations)}",
    ]
