"""Calibration (`calibrate_run`): the checkpoint is evaluated on the run's validation split with and
without TTA; a temperature is fitted to each (minimising validation log loss, clipped as Kaggle clips);
TTA is chosen when it improves the calibrated competition metric. A recipe's `tta` "on"/"off" overrides
the choice ("auto" follows it), and the stored choice, temperature and figures are those of what `predict`
then submits, so every calibrated number printed is the submission's own validation score. They go into
config.json per checkpoint (`calibration: {"best": ..., "last": ...}`; best.pt's also as the top-level
`tta` and `temperature`), and `predict_run` applies them; `predict --tta/--no-tta` picks the other
configuration, whose temperature and figure are stored beside it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.bootstrap import bootstrap_interval, temperature_warning
from ..competitions.metrics import calibrating_temperature, log_loss, softmax
from ..competitions.posthoc import GradeThresholdFit, TemperatureFit, cross_fit
from ..competitions.registry import resolve
from ..core.errors import KitError
from ..data.cache import ImageCache, load_images
from ..records.run_folder import RunDir
from .held_out import held_out_groups
from .loading import LoadedRun, load_run, open_run_layout, tabular_rows, validation_positions
from .streaming import stream_logits, tta_views


def validation_indices(loaded: LoadedRun, layout, cache: ImageCache) -> tuple[np.ndarray, np.ndarray]:
    """Cache positions and labels of the run's validation images (ids and labels from val_predictions.npz)."""
    ids, labels, _ = loaded.run.val_predictions()
    indices = validation_positions(loaded.run, layout, cache)
    labels = np.asarray(labels, dtype=np.int64)
    changed = np.flatnonzero(layout.train_labels[indices] != labels)
    if len(changed):
        first = ids[int(changed[0])]
        raise KitError(
            f"{layout.labels_path}: id {first} is labelled "
            f"{layout.classes[layout.train_labels[indices[changed[0]]]]!r} "
            f"but the run validated it as {loaded.classes[labels[changed[0]]]!r} ({len(changed)} such ids): "
            f"pass the --data-dir the run was trained on"
        )
    return indices, labels


def calibrate_loaded(
    loaded: LoadedRun, layout, batch_size: int | None = None, workers: int | None = None
) -> dict[str, Any]:
    """Evaluate `loaded` on its validation split with and without TTA, fit temperatures, record the choice."""
    comp, recipe, run = loaded.competition, loaded.recipe, loaded.run
    metric = comp.metric
    views = tta_views(comp, recipe)
    calibration: dict[str, Any] = {
        "checkpoint": loaded.checkpoint,
        "epoch": loaded.epoch,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "tta_views": list(views),
        "averaged_in": "logits",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if not run.file("val_predictions.npz").is_file():
        # a full-train run has no held-out images: nothing to measure TTA or fit a temperature on
        calibration.update(
            validated=False,
            tta=False,
            temperature=1.0,
            temperature_plain=1.0,
            temperature_tta=1.0,
            reason="no validation split (val_predictions.npz missing)",
        )
        _store_calibration(loaded, calibration)
        return calibration

    cache = load_images(layout, "train", recipe.cache_side, skip_bad=recipe.skip_bad_images)
    indices, labels = validation_indices(loaded, layout, cache)
    logits = stream_logits(
        loaded.model,
        cache,
        indices,
        recipe,
        loaded.mean,
        loaded.std,
        loaded.device,
        views,
        batch_size=batch_size,
        workers=workers,
        description=f"calibrating {run.name}",
        rows=tabular_rows(loaded, layout, "train", [cache.ids[i] for i in indices]),
    )
    plain, tta = logits.identity.astype(np.float64), logits.mean.astype(np.float64)
    groups = held_out_groups(comp, layout, loaded.run.val_predictions()[0])
    scores, fits = {}, {}
    for used, chosen_logits in (("plain", plain), ("tta", tta)):
        figures, fits[used] = _configuration(comp, labels, chosen_logits, groups, used)
        scores.update(figures)
    # what gets submitted is calibrated, so the choice compares calibrated scores; a tie keeps the cheaper plain pass
    tta_helps = metric.better(scores["val_metric_tta_calibrated"], scores["val_metric_plain_calibrated"])
    # the figures stored as the choice are those of what predict submits: a recipe's tta on/off outranks the measurement
    use_tta, source = (tta_helps, "calibration")
    if recipe.tta in ("on", "off"):
        use_tta, source = recipe.tta == "on", f"recipe tta={recipe.tta}"
    used = "tta" if use_tta else "plain"
    chosen, temperature = (tta if use_tta else plain), scores[f"temperature_{used}"]
    calibration.update(
        validated=True,
        images=int(len(labels)),
        groups=None if groups is None else int(len(np.unique(groups))),
        tta=bool(use_tta),
        tta_source=source,
        tta_measured_better=bool(tta_helps),
        temperature=float(temperature),
        **scores,
        val_metric=float(scores[f"val_metric_{used}_calibrated"]),
        val_interval=scores[f"val_interval_{used}_calibrated"],
        cross_fitted=True,
        val_log_loss_before=float(log_loss(labels, softmax(chosen))),
        val_log_loss_after=float(log_loss(labels, softmax(chosen, temperature))),
        temperature_note=fits[used]["temperature_note"],
        fit_notes=fits[used]["notes"],
    )
    _store_calibration(loaded, calibration)
    return calibration


def _configuration(comp, labels: np.ndarray, logits: np.ndarray, groups, used: str) -> tuple[dict, dict]:
    """One configuration's (plain or TTA) post-hoc fits, each cross-fitted (competitions/posthoc.py): the
    temperature, then grade thresholds where the metric asks for them. The calibrated figure is scored on
    predictions each made by fits that did not see them, with its bootstrap interval; the stored parameters are
    refitted on every held-out image, and left at their defaults where the cross-fitted score does not beat
    the default's."""
    metric = comp.metric
    temperature = cross_fit(TemperatureFit(), labels, logits, groups)
    submitted, notes = temperature.submitted, [temperature.note]
    figures: dict[str, Any] = {f"temperature_{used}": float(temperature.params)}
    if metric.fits_thresholds and comp.submission_kind == "label":
        cut = cross_fit(GradeThresholdFit(metric), labels, softmax(logits, temperature.params), groups)
        submitted, notes = cut.submitted, [*notes, cut.note]
        figures[f"thresholds_{used}"] = cut.params
        figures[f"val_metric_{used}_thresholds_cross_fitted"] = float(cut.fitted_score)
        figures[f"val_metric_{used}_thresholds_default"] = float(cut.default_score)
    notes.append(temperature_warning(temperature.params, len(labels)))
    interval = bootstrap_interval(metric, labels, submitted, groups)
    raw = bootstrap_interval(metric, labels, softmax(logits), groups)
    figures.update(
        {
            f"val_metric_{used}": raw.value,
            f"val_interval_{used}": raw.to_dict(),
            f"val_metric_{used}_calibrated": interval.value,
            f"val_interval_{used}_calibrated": interval.to_dict(),
            f"val_log_loss_{used}": log_loss(labels, softmax(logits)),
            f"val_log_loss_{used}_calibrated": log_loss(labels, temperature.submitted),
        }
    )
    floor_note = calibrating_temperature(logits, labels)[1]  # all rows ran into the search's floor: said why
    return figures, {"temperature_note": floor_note, "notes": [note for note in notes if note]}


def _store_calibration(loaded: LoadedRun, calibration: dict[str, Any]) -> None:
    """Beside the other checkpoint's calibration, never over it; the top-level `tta` and `temperature` are
    best.pt's, what a plain `predict` uses."""
    stored = dict(loaded.run.read_config().calibrations)
    stored[loaded.checkpoint] = calibration
    top = {"tta": bool(calibration["tta"]), "temperature": float(calibration["temperature"])}
    loaded.run.update_config(calibration=stored, **(top if loaded.checkpoint == "best" else {}))


def calibrate_run(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    checkpoint: str = "best",
    *,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Decide TTA on/off and fit the temperature on the run's validation split; stored in config.json."""
    loaded = load_run(run_dir, checkpoint, device)
    layout = open_run_layout(loaded, data_dir)
    return calibrate_loaded(loaded, layout, batch_size, workers)


def calibrate_after_training(
    trained, data_dir: Path | str | None = None, *, device: str | None = None
) -> dict[str, Any] | None:
    """What follows training, however the run was trained (`kaggle-kit train`, an experiment in this process):
    TTA choice and temperature measured once on best.pt, so predict and score read them from config.json. None
    when there is nothing to measure: the training was interrupted, or it had no validation split. `trained` is
    the trainer's TrainResult; `device` defaults to the run's own."""
    if trained.interrupted or trained.best_epoch is None:
        return None
    if resolve(RunDir(trained.run_dir).read_config().competition).target != "label":
        from .target_predict import fit_target_run  # label sets, values, grades: thresholds or cut points

        return fit_target_run(trained.run_dir, data_dir, device)  # describe with target_predict.describe_target_fit
    if device is None:
        device = RunDir(trained.run_dir).read_config().recipe.device
    return calibrate_run(trained.run_dir, data_dir, device=device)


def current_calibration(loaded: LoadedRun) -> dict[str, Any] | None:
    """The run's stored calibration when it was made for this very checkpoint (same name and epoch)."""
    calibration = loaded.run.read_config().calibration_of(loaded.checkpoint)
    made_for = (calibration.get("checkpoint"), calibration.get("epoch")) if calibration else None
    if made_for != (loaded.checkpoint, loaded.epoch):
        return None  # the run was resumed, or this checkpoint was never measured: measure again
    if calibration.get("validated") and "tta_source" not in calibration and loaded.recipe.tta in ("on", "off"):
        return None  # stored before the recipe's tta decided the stored figures: they may describe the other setting
    return calibration
