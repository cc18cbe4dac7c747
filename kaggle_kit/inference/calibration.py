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

from ..competitions.metrics import (
    Metric,
    calibrating_temperature,
    fit_qwk_thresholds,
    log_loss,
    one_hot_grades,
    softmax,
)
from ..competitions.registry import resolve
from ..core.errors import KitError
from ..data.batches import cache_short_side
from ..data.cache import ImageCache, load_images
from ..records.run_folder import RunDir
from .loading import LoadedRun, load_run, open_run_layout
from .streaming import stream_logits, tta_views


def validation_indices(loaded: LoadedRun, layout, cache: ImageCache) -> tuple[np.ndarray, np.ndarray]:
    """Cache positions and labels of the run's validation images (ids and labels from val_predictions.npz)."""
    ids, labels, _ = loaded.run.val_predictions()
    position = {image_id: n for n, image_id in enumerate(cache.ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise KitError(
            f"validation id {missing[0]} of {loaded.run.file('val_predictions.npz')} is not in {layout.labels_path} "
            f"({len(missing)} missing): pass the --data-dir the run was trained on"
        )
    indices = np.array([position[i] for i in ids], dtype=np.int64)
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

    cache = load_images(layout, "train", cache_short_side(recipe), skip_bad=recipe.skip_bad_images)
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
    )
    plain, tta = logits.identity.astype(np.float64), logits.mean.astype(np.float64)
    # fitted whatever the competition's metric: an argmax, a ranking or a QWK threshold on the expected grade may not
    # move, but the probabilities pseudo-labels threshold, ensembles blend and reliability plots show must be
    # calibrated ones
    (t_plain, note_plain), (t_tta, note_tta) = (
        calibrating_temperature(plain, labels),
        calibrating_temperature(tta, labels),
    )
    scores = {
        "val_metric_plain": metric(labels, softmax(plain)),
        "val_metric_tta": metric(labels, softmax(tta)),
        "val_metric_plain_calibrated": metric(labels, softmax(plain, t_plain)),
        "val_metric_tta_calibrated": metric(labels, softmax(tta, t_tta)),
        "val_log_loss_plain": log_loss(labels, softmax(plain)),
        "val_log_loss_tta": log_loss(labels, softmax(tta)),
        "val_log_loss_plain_calibrated": log_loss(labels, softmax(plain, t_plain)),
        "val_log_loss_tta_calibrated": log_loss(labels, softmax(tta, t_tta)),
    }
    thresholds: dict[str, Any] = {}
    if metric.fits_thresholds and comp.submission_kind == "label":
        thresholds = {
            **_thresholds(metric, labels, softmax(plain, t_plain), "plain"),
            **_thresholds(metric, labels, softmax(tta, t_tta), "tta"),
        }
        scores.update({key: value for key, value in thresholds.items() if key.startswith("val_metric")})
    # what gets submitted is calibrated, so the choice compares calibrated scores; a tie keeps the cheaper plain pass
    tta_helps = metric.better(scores["val_metric_tta_calibrated"], scores["val_metric_plain_calibrated"])
    # the figures stored as the choice are those of what predict submits: a recipe's tta on/off outranks the measurement
    use_tta, source = (tta_helps, "calibration")
    if recipe.tta in ("on", "off"):
        use_tta, source = recipe.tta == "on", f"recipe tta={recipe.tta}"
    chosen, temperature, note = (tta, t_tta, note_tta) if use_tta else (plain, t_plain, note_plain)
    calibration.update(
        validated=True,
        images=int(len(labels)),
        tta=bool(use_tta),
        tta_source=source,
        tta_measured_better=bool(tta_helps),
        temperature=float(temperature),
        temperature_plain=float(t_plain),
        temperature_tta=float(t_tta),
        **{k: float(v) for k, v in scores.items()},
        **{key: value for key, value in thresholds.items() if key.startswith("thresholds")},
        val_metric=float(scores["val_metric_tta_calibrated" if use_tta else "val_metric_plain_calibrated"]),
        val_log_loss_before=float(log_loss(labels, softmax(chosen))),
        val_log_loss_after=float(log_loss(labels, softmax(chosen, temperature))),
        temperature_note=note,
    )
    _store_calibration(loaded, calibration)
    return calibration


def _thresholds(metric: Metric, labels: np.ndarray, probs: np.ndarray, used: str) -> dict[str, Any]:
    """Grade thresholds on the expected grade fitted on validation, kept only where they beat the argmax there;
    the calibrated figure of that configuration is then the thresholded one, what predict submits."""
    thresholds = fit_qwk_thresholds(labels, probs)
    value = metric(labels, one_hot_grades(probs, thresholds))
    if not metric.better(value, metric(labels, probs)):
        return {f"thresholds_{used}": None}
    return {f"thresholds_{used}": thresholds, f"val_metric_{used}_calibrated": float(value)}


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

        fit_target_run(trained.run_dir)
        return None
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
