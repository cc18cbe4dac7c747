"""After training and at predict time, for targets other than one label per image.

`fit_target_run` decides test-time augmentation on the run's validation images (the recipe's tta on/off, or
auto: TTA where it beats the plain pass on the kind's metric), writes the chosen held-out values to
val_values.npz (what fold groups and ensembles read) and cross-fits the kind's fit (a label set's thresholds, a
grade's cut points, the new-class threshold) on them (competitions/posthoc); all stored in config.json as
`target_fit`, so the validation figure it prints is one the submission can expect. `predict_target` writes the
test submission with the same views and fit. TTA averages the kind's values over the views (sigmoid or softmax
probabilities, regression outputs: `TargetKind.view_values`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.posthoc import answer_metric, cross_fit_answers, describe_answers_fit
from ..competitions.targets import target_of
from ..core import progress
from ..core.atomic import atomic_write_bytes
from ..records.run_folder import RunDir
from .loading import tabular_rows, validation_positions
from .streaming import IDENTITY, stream_logits, tta_views

VALUES_FILE = "val_values.npz"


def kind_values(loaded, cache, indices, views, batch_size=None, workers=None, description="predicting", rows=None):
    """(values averaged over `views`, values of the identity view alone, the stream's record) of cache[indices];
    `rows`: their tabular columns (None: images only)."""
    target = target_of(loaded.competition)
    streamed = stream_logits(
        loaded.model, cache, indices, loaded.recipe, loaded.mean, loaded.std, loaded.device, tuple(views),
        batch_size=batch_size, workers=workers, description=description, per_view=target.view_values, rows=rows,
    )  # fmt: skip
    return target.averaged_values(streamed.mean), target.averaged_values(streamed.identity), streamed


def _choose_views(loaded, layout, truth: np.ndarray, values: np.ndarray, device_batch) -> tuple[tuple, np.ndarray, str]:
    """(views, held-out values with them, why): the recipe's tta on/off, else TTA where the kind's metric of its
    default answers is better with it on the validation images."""
    from ..data.cache import load_images

    comp, recipe, target = loaded.competition, loaded.recipe, target_of(loaded.competition)
    views = tta_views(comp, recipe)
    if recipe.tta == "off" or len(views) == 1:
        return (IDENTITY,), values, f"recipe tta={recipe.tta}" if recipe.tta == "off" else "one view"
    cache = load_images(layout, "train", recipe.cache_side, skip_bad=recipe.skip_bad_images)
    indices = validation_positions(loaded.run, layout, cache)
    rows = tabular_rows(loaded, layout, "train", [cache.ids[i] for i in indices])
    averaged, plain, _ = kind_values(loaded, cache, indices, views, *device_batch, f"TTA on {loaded.run.name}", rows)
    if recipe.tta == "on":
        return views, averaged, "recipe tta=on"
    scorer = answer_metric(target, comp.metric)
    with_tta, without = (scorer(truth, target.answer(v, {})) for v in (averaged, plain))
    source = f"validation {comp.metric.label} {with_tta:.4f} with TTA, {without:.4f} without"
    if comp.metric.better(with_tta, without):
        return views, averaged, source
    return (IDENTITY,), plain, source


def fit_target_run(run_dir: Path | str, data_dir: Path | str | None = None, device: str | None = None) -> dict:
    """Choose the views and cross-fit the kind's fit on the run's held-out values; stored and returned. Whole
    groups are kept in one part where a group column is declared."""
    from .held_out import held_out_groups
    from .loading import load_run, open_run_layout

    run = RunDir(run_dir)
    loaded = load_run(run_dir, "best", device or run.read_config().recipe.device)
    layout = open_run_layout(loaded, data_dir)
    comp, target = loaded.competition, target_of(loaded.competition)
    ids, truth, logits = run.val_predictions()
    views, values, source = _choose_views(loaded, layout, truth, target.values(logits), (None, None))
    buffer = io.BytesIO()
    np.savez(buffer, ids=np.array(ids, dtype=str), truth=truth, values=values)
    atomic_write_bytes(run.file(VALUES_FILE), buffer.getvalue())
    groups = held_out_groups(comp, layout, ids)
    record = {
        "target": comp.target,  # what tells this record from a label run's calibration
        "images": len(ids),
        "checkpoint": "best",
        "epoch": loaded.epoch,
        "tta": len(views) > 1,
        "tta_views": list(views),
        "tta_source": source,
        **cross_fit_answers(target, comp.metric, truth, values, groups),
    }
    run.update_config(target_fit=record)
    return record


def describe_target_fit(record: dict[str, Any], metric) -> list[str]:
    """What predict will use, in words: the views, then the fit with its cross-fitted figure."""
    return [
        f"test-time augmentation {'on' if record.get('tta') else 'off'} ({record.get('tta_source')})",
        "what predict uses: " + describe_answers_fit(record, metric, f"validation ({record['images']} images)"),
    ]


def held_out_values(run: RunDir) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, truth, values) of the run's validation images as its predict sees them (its TTA choice); the plain
    values of val_predictions.npz for a run fitted before val_values.npz was written."""
    path = run.file(VALUES_FILE)
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        return data["ids"].tolist(), data["truth"], data["values"]
    from ..competitions.registry import resolve

    ids, truth, logits = run.val_predictions()
    return ids, truth, target_of(resolve(run.read_config().competition)).values(logits)


def run_metric(loaded):
    return loaded.competition.metric


def stored_fit(run: RunDir) -> dict[str, Any]:
    return dict((run.config().get("target_fit") or {}).get("fitted") or {})


def run_test_values(loaded, layout, batch_size: int | None, workers: int | None, tta: bool | None = None):
    """(test ids, values with the run's chosen views, the stream's record): what predict and ensemble blend.
    `tta` True or False overrides the run's choice (predict --tta / --no-tta)."""
    from ..data.cache import load_images

    run = loaded.run
    if not run.config().get("target_fit") and run.file("val_predictions.npz").is_file():
        for line in describe_target_fit(fit_target_run(run.path, layout.root, str(loaded.device)), run_metric(loaded)):
            progress.say(line)
    views = (run.config().get("target_fit") or {}).get("tta_views") or [IDENTITY]
    if tta is not None:
        views = tta_views(loaded.competition, loaded.recipe) if tta else (IDENTITY,)
    cache = load_images(layout, "test", loaded.recipe.cache_side, skip_bad=True)
    rows = tabular_rows(loaded, layout, "test", cache.ids)
    values, _, streamed = kind_values(
        loaded, cache, np.arange(len(cache)), views, batch_size, workers, f"predicting {run.name}", rows
    )
    return list(cache.ids), values, streamed


def predict_target(loaded, layout, path: Path, sample, batch_size, workers, tta: bool | None = None) -> dict[str, Any]:
    """The test submission of a label-set, value, grade or ranking run, with the run's views (or `tta`'s) and fit;
    returns the fields of `predict.PredictResult`."""
    from ..submissions.target_writing import write_target_submission

    comp, run = loaded.competition, loaded.run
    ids, values, streamed = run_test_values(loaded, layout, batch_size, workers, tta)
    record = run.config().get("target_fit") or {}
    write_target_submission(path, comp, sample, layout.sample_path, ids, values, loaded.classes, stored_fit(run))
    return dict(  # predict_run's PredictResult
        path=path,
        competition=comp,
        rows=len(sample),
        tta=len(streamed.views) > 1,
        views=streamed.views,
        temperature=1.0,
        tta_source=record.get("tta_source", "no validation split") if tta is None else "--tta" if tta else "--no-tta",
        checkpoint=loaded.checkpoint,
        epoch=loaded.epoch,
        device=str(loaded.device),
        seconds=streamed.seconds,
        images_per_s=streamed.images_per_s,
        sample_path=layout.sample_path,
        calibration=None,
        val_metric=record.get("metric"),
    )
