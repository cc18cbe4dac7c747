"""Fold groups of targets other than one label per image: OOF values, their fit, and the blended submission.

Each fold's held-out values come from its best epoch's val_predictions.npz (a target kind predicts without TTA,
so they are what the fold's own predict would see). The OOF values of every image are fitted once (a label
set's threshold, a grade's cut points, as `targets` fits them) and stored in cv.json; `predict GROUP` averages
the folds' test values and applies that fit. The OOF figure after fitting is measured on the images it was
fitted on (optimistic); the unfitted OOF figure beside it is not.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.registry import Competition, resolve
from ..competitions.targets import target_of
from ..core.atomic import atomic_write_bytes
from ..core.errors import KitError
from ..records.group_folder import FoldGroup
from ..records.run_folder import RunDir

OOF_FILE = "oof_values.npz"


def finish_target_group(group: FoldGroup, plan: dict[str, Any], comp: Competition) -> dict[str, Any]:
    target, k = target_of(comp), int(plan["folds"])
    position = {image_id: n for n, image_id in enumerate(plan["ids"])}
    truth, values, fold_of, per_fold = None, None, np.zeros(len(position), np.int64), []
    for fold in range(1, k + 1):
        ids, held_truth, logits = RunDir(group.fold_dir(fold)).val_predictions()
        held = target.values(logits)
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        if truth is None:
            truth = np.zeros((len(position), *held_truth.shape[1:]), held_truth.dtype)
            values = np.zeros((len(position), *held.shape[1:]), np.float64)
        truth[rows], values[rows], fold_of[rows] = held_truth, held, fold
        metric = target.score(comp.metric, held_truth, held, target.fit(held_truth, held, comp.metric))
        per_fold.append({"fold": fold, "images": len(ids), "metric": metric})
    uncovered = np.flatnonzero(fold_of == 0)
    if len(uncovered):
        raise KitError(f"{group.path}: training id {plan['ids'][uncovered[0]]} was held out by no fold: train again")
    fitted = target.fit(truth, values, comp.metric)
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
        "fitted": fitted,
        "oof_metric": target.score(comp.metric, truth, values, fitted),
        "oof_metric_unfitted": target.score(comp.metric, truth, values, {}),
        "fold_mean": float(scores.mean()),
        "fold_std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
        "per_fold": per_fold,
    }
    group.write_cv(summary, "\n".join([f"# {group.name}: {k}-fold cross-validation", "", *describe(summary), ""]))
    return summary


def describe(summary: dict[str, Any]) -> list[str]:
    metric = resolve(summary["competition"]).metric
    folds = ", ".join(f"{row['metric']:.4f}" for row in summary["per_fold"])
    fitted = ", ".join(f"{k} {np.round(v, 3).tolist()}" for k, v in summary["fitted"].items()) or "nothing to fit"
    return [
        f"OOF {metric.describe(summary['oof_metric'])} ({summary['images']} images, each predicted by the fold that "
        f"held it out; fitted on them: {fitted}; unfitted {summary['oof_metric_unfitted']:.4f})",
        f"per fold: mean {summary['fold_mean']:.4f}, std {summary['fold_std']:.4f} ({folds}) - {metric.direction}",
    ]


def predict_target_group(group: FoldGroup, plan, comp: Competition, data_dir, path: Path, device, batch_size):
    """The folds' averaged test values with the OOF fit applied, written as a checked submission."""
    from ..data.cache import load_images
    from ..inference.loading import load_run, open_run_layout, tabular_rows
    from ..inference.streaming import stream_logits
    from ..submissions.files import read_sample
    from ..submissions.target_writing import write_target_submission

    target, total, k = target_of(comp), None, int(plan["folds"])
    for fold in range(1, k + 1):
        loaded = load_run(group.fold_dir(fold), "best", device)
        layout = open_run_layout(loaded, data_dir)
        cache = load_images(layout, "test", loaded.recipe.cache_side, skip_bad=True)
        logits = stream_logits(
            loaded.model, cache, np.arange(len(cache)), loaded.recipe, loaded.mean, loaded.std, loaded.device,
            batch_size=batch_size, description=f"predicting fold {fold}",
            rows=tabular_rows(loaded, layout, "test", cache.ids),
        ).mean  # fmt: skip
        values = target.values(logits)
        total = values if total is None else total + values
    summary = group.cv() or {}
    sample = read_sample(layout.sample_path, comp)
    path.parent.mkdir(parents=True, exist_ok=True)
    fitted = summary.get("fitted") or {}
    write_target_submission(path, comp, sample, layout.sample_path, list(cache.ids), total / k, loaded.classes, fitted)
    return layout, summary
