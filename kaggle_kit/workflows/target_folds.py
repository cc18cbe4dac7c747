"""Fold groups of targets other than one label per image: OOF values, their fit, and the blended submission.

Each fold's held-out values are what the fold's own predict would see (its val_values.npz: best.pt with the views
its training chose, inference/target_predict). The kind's fit (a label set's thresholds, a grade's cut
points, the new-class threshold) is cross-fitted over the folds (competitions/posthoc): each fold's images are
answered by a fit made on the other folds' OOF values, so the printed OOF figure is one the submission can
expect; the fit refitted on every OOF image is stored in cv.json where it beats the kind's default, and
`predict GROUP` averages the folds' test values and applies it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.bootstrap import fold_lines
from ..competitions.posthoc import cross_fit_answers, default_answers_interval, describe_answers_fit
from ..competitions.registry import Competition, resolve
from ..competitions.targets import target_of
from ..core.atomic import atomic_write_bytes
from ..core.errors import KitError
from ..data.layout import open_layout
from ..inference.held_out import held_out_groups
from ..inference.target_predict import fit_target_run, held_out_values
from ..records.group_folder import FoldGroup
from ..records.run_folder import RunDir

OOF_FILE = "oof_values.npz"


def finish_target_group(group: FoldGroup, plan: dict[str, Any], comp: Competition, data_dir=None, device="auto"):
    """Each fold's views chosen and held-out values written (where its training did not), then the OOF fit."""
    target, k = target_of(comp), int(plan["folds"])
    for fold in range(1, k + 1):
        run = RunDir(group.fold_dir(fold))
        if not run.config().get("target_fit"):
            fit_target_run(run.path, data_dir or plan["data_dir"], device)
    position = {image_id: n for n, image_id in enumerate(plan["ids"])}
    truth, values, fold_of, per_fold = None, None, np.zeros(len(position), np.int64), []
    groups = held_out_groups(comp, open_layout(comp, plan["data_dir"]), plan["ids"]) if comp.group_column else None
    for fold in range(1, k + 1):
        ids, held_truth, held = held_out_values(RunDir(group.fold_dir(fold)))
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        if truth is None:
            truth = np.zeros((len(position), *held_truth.shape[1:]), held_truth.dtype)
            values = np.zeros((len(position), *held.shape[1:]), np.float64)
        truth[rows], values[rows], fold_of[rows] = held_truth, held, fold
        fold_groups = None if groups is None else groups[rows]
        figure = default_answers_interval(target, comp.metric, held_truth, held, fold_groups)
        per_fold.append({"fold": fold, "images": len(ids), "metric": figure.value, "interval": figure.to_dict()})
    uncovered = np.flatnonzero(fold_of == 0)
    if len(uncovered):
        raise KitError(f"{group.path}: training id {plan['ids'][uncovered[0]]} was held out by no fold: train again")
    record = cross_fit_answers(target, comp.metric, truth, values, groups, parts=fold_of)
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array(plan["ids"], dtype=str), truth=truth, values=values, fold=fold_of)
    atomic_write_bytes(group.path / OOF_FILE, buffer.getvalue())
    scores = np.array([row["metric"] for row in per_fold])
    summary = {
        "competition": comp.name,
        "target": comp.target,
        "metric": comp.metric.name,
        "higher_is_better": comp.metric.higher_is_better,
        "folds": k,
        "images": len(position),
        "fitted": record["fitted"],
        "oof_metric": record["metric"],
        "oof_fit": record,
        "fold_mean": float(scores.mean()),
        "fold_std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
        "per_fold": per_fold,
    }
    group.write_cv(summary, "\n".join([f"# {group.name}: {k}-fold cross-validation", "", *describe(summary), ""]))
    return summary


def describe(summary: dict[str, Any]) -> list[str]:
    metric = resolve(summary["competition"]).metric
    folds = ", ".join(f"{row['metric']:.4f}" for row in summary["per_fold"])
    images = f"OOF ({summary['images']} images, each predicted by the fold that held it out)"
    return [
        describe_answers_fit(summary["oof_fit"], metric, images),
        f"per fold (the kind's default answers): mean"
        f" {summary['fold_mean']:.4f}, std {summary['fold_std']:.4f} ({folds}) - {metric.direction}",
        *fold_lines(summary["per_fold"], metric),
    ]


def predict_target_group(group: FoldGroup, plan, comp: Competition, data_dir, path: Path, device, batch_size):
    """The folds' averaged test values with the OOF fit applied, written as a checked submission."""
    from ..submissions.files import read_sample
    from ..submissions.target_writing import write_target_submission

    ids, values, classes, layout = group_test_values(group, plan, data_dir, device, batch_size)
    summary = group.cv() or {}
    sample = read_sample(layout.sample_path, comp)
    path.parent.mkdir(parents=True, exist_ok=True)
    fitted = summary.get("fitted") or {}
    write_target_submission(path, comp, sample, layout.sample_path, ids, values, classes, fitted)
    return layout, summary


def group_test_values(group: FoldGroup, plan, data_dir, device, batch_size=None):
    """(test ids, the folds' test values averaged, classes, layout), each fold with the views it chose."""
    from ..inference.loading import load_run, open_run_layout
    from ..inference.target_predict import run_test_values

    total, k = None, int(plan["folds"])
    for fold in range(1, k + 1):
        loaded = load_run(group.fold_dir(fold), "best", device)
        layout = open_run_layout(loaded, data_dir)
        ids, values, _ = run_test_values(loaded, layout, batch_size, None)
        total = values if total is None else total + values
    return ids, total / k, loaded.classes, layout
