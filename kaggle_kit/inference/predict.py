"""A run's calibrated test probabilities -> a checked submission file; any run's held-out and test logits in
its predict configuration (what folds, ensembles and pseudo-labels read).

    run folder (config.json + best.pt/last.pt) -> model -> streamed TTA logits (streaming) ->
    softmax(logits / T) with the stored calibration (calibration) -> write in the sample's exact format
    (staged) -> validate -> rename into place"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.metrics import (
    one_hot_grades,
    softmax,
)
from ..competitions.registry import Competition
from ..core.errors import KitError
from ..data.cache import load_images
from ..records.run_config import RunConfig
from ..records.run_folder import RunDir
from .calibration import calibrate_loaded, current_calibration, validation_indices
from .engines import batch_choice, load_for_inference
from .loading import LoadedRun, open_run_layout, tabular_rows
from .sharding import Replica, inference_devices, replicate, sharded_logits
from .streaming import IDENTITY, stream_logits, tta_views


@dataclass
class PredictResult:
    path: Path
    competition: Competition
    rows: int
    tta: bool
    views: tuple[str, ...]
    temperature: float
    tta_source: str  # why TTA is on or off: "--tta", "recipe", "calibration", ...
    checkpoint: str
    epoch: int | None
    device: str
    seconds: float
    images_per_s: float
    sample_path: Path
    calibration: dict[str, Any] | None = None
    val_metric: float | None = None  # this very configuration (TTA, temperature) on the validation split
    warnings: list[str] = field(default_factory=list)
    engine: str = "torch"
    notes: list[str] = field(default_factory=list)  # how the engine was chosen, where it was not as asked
    batch_size: int | None = None
    batch_reason: str | None = None  # "--batch-size", the GPU's memory probe, or the CPU's cores


def decide_tta(loaded: LoadedRun, tta: bool | None, calibration: dict[str, Any] | None) -> tuple[bool, str]:
    if tta is not None:
        return tta, "--tta" if tta else "--no-tta"
    if loaded.recipe.tta in ("on", "off"):
        return loaded.recipe.tta == "on", f"recipe tta={loaded.recipe.tta}"
    if calibration is None or not calibration.get("validated"):
        return False, "no validation split to measure it on"
    return bool(calibration["tta"]), "calibration"


@dataclass
class CalibratedProbabilities:
    """A run's calibrated probabilities for every test image, and the configuration that made them."""

    ids: list[str]  # the test cache's ids: the sample submission's order
    probabilities: np.ndarray  # (n, classes) float, softmax(logits / temperature)
    tta: bool
    views: tuple[str, ...]
    temperature: float
    tta_source: str
    calibration: dict[str, Any] | None
    val_metric: float | None
    seconds: float
    images_per_s: float
    bad_ids: list[str] = field(default_factory=list)  # predicted from a grey placeholder
    warnings: list[str] = field(default_factory=list)


def calibrated_test_probabilities(
    loaded: LoadedRun,
    layout,
    tta: bool | None = None,
    *,
    calibrated: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
    replicas: list[Replica] | None = None,
) -> CalibratedProbabilities:
    """`loaded`'s probabilities for the test set with its stored TTA choice and temperature (what `predict`
    submits). `tta` None follows the recipe or the calibration; `calibrated` measures a missing or stale
    calibration even where the submission would not need it (pseudo-labels threshold the probabilities).
    `replicas`: the model on each device the test set is split across (`sharding`); default `loaded`'s one."""
    comp, recipe, run = loaded.competition, loaded.recipe, loaded.run
    calibration = current_calibration(loaded)
    # label submissions take the argmax, which no temperature changes: calibrate only when it can matter
    temperature_matters = comp.submission_kind != "label" and comp.metric.uses_temperature
    temperature_matters |= comp.submission_kind == "label" and comp.metric.fits_thresholds  # so are thresholds
    tta_needs_it = tta is None and recipe.tta == "auto"
    if calibration is None and (calibrated or temperature_matters or tta_needs_it):
        calibration = calibrate_loaded(loaded, layout, batch_size, workers)
    use_tta, tta_source = decide_tta(loaded, tta, calibration)
    temperature, val_metric = 1.0, None
    if calibration is not None and calibration.get("validated"):
        temperature = float(calibration["temperature_tta" if use_tta else "temperature_plain"])
        val_metric = float(calibration["val_metric_tta_calibrated" if use_tta else "val_metric_plain_calibrated"])

    # every test id needs a row, so an image that does not decode is predicted from the cache's grey
    # placeholder and reported, rather than stopping the whole prediction
    cache = load_images(layout, "test", recipe.cache_side, skip_bad=True)
    warnings = []
    if cache.bad_ids:
        shown = ", ".join(str(layout.test.path(i)) for i in cache.bad_ids[:3])
        more = f" and {len(cache.bad_ids) - 3} more" if len(cache.bad_ids) > 3 else ""
        warnings.append(
            f"{len(cache.bad_ids)} test image(s) do not decode ({shown}{more}): their rows are predicted "
            f"from a grey placeholder; download the data again for a true prediction"
        )
    views = tta_views(comp, recipe) if use_tta else (IDENTITY,)
    logits = sharded_logits(
        replicas or [Replica(loaded.model, loaded.device)],
        cache,
        np.arange(len(cache)),
        recipe,
        loaded.mean,
        loaded.std,
        views,
        batch_size=batch_size,
        workers=workers,
        description=f"predicting {run.name}",
        rows=tabular_rows(loaded, layout, "test", cache.ids),
    )
    return CalibratedProbabilities(
        ids=list(cache.ids),
        probabilities=softmax(logits.mean, temperature),
        tta=use_tta,
        views=views,
        temperature=temperature,
        tta_source=tta_source,
        calibration=calibration,
        val_metric=val_metric,
        seconds=logits.seconds,
        images_per_s=logits.images_per_s,
        bad_ids=list(cache.bad_ids),
        warnings=warnings,
    )


def predict_run(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    checkpoint: str = "best",
    tta: bool | None = None,
    out: Path | str | None = None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    engine: str = "torch",
    precision: str | None = None,
    devices=None,
) -> PredictResult:
    """Predict every test image of the run's competition and write a validated submission.

    The file goes to `out`, default `submissions/<competition>/<run name>.csv`. `tta` None follows the
    recipe (on/off) or the run's calibration (auto); the calibration is made first when missing or stale.
    `devices` (a list, or "cuda:0,cuda:1"): the test set split across them; default every visible GPU where
    `device` is auto or cuda, else `device` (`sharding.inference_devices`).
    """
    from ..submissions.files import read_sample, write_checked_submission
    from ..submissions.provenance import record_written

    on = inference_devices(devices, device)
    loaded, choice = load_for_inference(run_dir, checkpoint, str(on[0]), engine, precision)
    comp, run = loaded.competition, loaded.run
    layout = open_run_layout(loaded, data_dir)
    path = Path(out) if out else Path("submissions") / comp.name / f"{run.name}.csv"
    if path.is_dir():
        raise KitError(f"--out {path} is a folder: give the submission's file name, e.g. {path / (run.name + '.csv')}")
    sample = read_sample(layout.sample_path, comp)  # a bad sample fails before minutes of inference
    if comp.target != "label":  # label sets, values, grades: their kind's values and fitted cuts
        from .target_predict import predict_target

        fields = predict_target(loaded, layout, path, sample, batch_size, workers, tta)
        result = PredictResult(**fields, engine=choice.name, notes=[choice.note] if choice.note else [])
        record_written(path, run.path, comp.name, layout.root, layout.sample_path)
        return result

    batch_size, batch_reason = batch_choice(loaded, batch_size, len(tta_views(comp, loaded.recipe)))
    replicas = replicate(loaded, choice, on)
    test = calibrated_test_probabilities(loaded, layout, tta, batch_size=batch_size, workers=workers, replicas=replicas)
    probs = test.probabilities
    thresholds = (test.calibration or {}).get(f"thresholds_{'tta' if test.tta else 'plain'}")
    if thresholds and comp.submission_kind == "label":
        probs = one_hot_grades(probs, thresholds)
    validation = write_checked_submission(path, comp, sample, layout.sample_path, test.ids, probs, loaded.classes)
    record_written(path, run.path, comp.name, layout.root, layout.sample_path)  # so `submit FILE` finds the run
    return PredictResult(
        path=path,
        competition=comp,
        rows=validation.rows,
        tta=test.tta,
        views=test.views,
        temperature=test.temperature,
        tta_source=test.tta_source,
        checkpoint=checkpoint,
        epoch=loaded.epoch,
        device=",".join(str(r.device) for r in replicas),
        seconds=test.seconds,
        images_per_s=test.images_per_s,
        sample_path=layout.sample_path,
        calibration=test.calibration,
        val_metric=test.val_metric,
        warnings=test.warnings,
        engine=choice.name,
        notes=[choice.note] if choice.note else [],
        batch_size=batch_size,
        batch_reason=batch_reason,
    )


@dataclass
class RunLogits:
    """One run's logits in the configuration its `predict` submits (TTA choice), for a fold group or a blend:
    its held-out images (val_ids, labels) and every test image (test_ids, sample order)."""

    run: RunDir
    config: RunConfig
    competition: Competition
    classes: list[str]
    tta: bool
    temperature: float  # the run's own, fitted on its held-out images in this configuration
    val_ids: list[str]
    val_labels: np.ndarray
    val_logits: np.ndarray
    test_ids: list[str] | None = None
    test_logits: np.ndarray | None = None
    layout: Any = None
    warnings: list[str] = field(default_factory=list)
    test_bad_ids: list[str] = field(default_factory=list)  # test images that do not decode (predicted from grey)


def run_logits(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    *,
    held_out: bool = True,
    test: bool = True,
    device: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    engine: str = "torch",
) -> RunLogits:
    """best.pt's held-out logits (with `held_out`; streamed again, so they match the TTA choice) and its test logits
    (with `test`). The run is calibrated first when its stored calibration is missing or stale."""
    loaded, choice = load_for_inference(run_dir, "best", device, engine)
    layout = open_run_layout(loaded, data_dir)
    calibration = current_calibration(loaded)
    # a calibrated run predicting the test set alone needs no held-out file (a packaged fold on Kaggle ships none)
    if (held_out or calibration is None) and not loaded.run.file("val_predictions.npz").is_file():
        raise KitError(
            f"{loaded.run.path} has no held-out predictions (trained with --full-train or no finished epoch): "
            f"it cannot be weighed or calibrated; use a run with a validation split"
        )
    calibration = calibration or calibrate_loaded(loaded, layout, batch_size, workers)
    use_tta, _ = decide_tta(loaded, None, calibration)
    views = tta_views(loaded.competition, loaded.recipe) if use_tta else (IDENTITY,)
    recipe = loaded.recipe
    stream = dict(batch_size=batch_size, workers=workers)
    val_ids, labels, logits = [], np.zeros(0, np.int64), np.zeros((0, len(loaded.classes)), np.float32)
    if held_out:
        train_cache = load_images(layout, "train", recipe.cache_side, skip_bad=recipe.skip_bad_images)
        indices, labels = validation_indices(loaded, layout, train_cache)
        val_ids = [train_cache.ids[i] for i in indices]
        logits = stream_logits(
            loaded.model, train_cache, indices, recipe, loaded.mean, loaded.std, loaded.device, views,
            description=f"held-out {loaded.run.name}", rows=tabular_rows(loaded, layout, "train", val_ids), **stream,
        ).mean  # fmt: skip
    result = RunLogits(
        loaded.run,
        loaded.config,
        loaded.competition,
        loaded.classes,
        use_tta,
        float(calibration["temperature_tta" if use_tta else "temperature_plain"]),
        val_ids,
        labels,
        logits,
        layout=layout,
        warnings=[choice.note] if choice.note else [],
    )
    if test:
        test_cache = load_images(layout, "test", recipe.cache_side, skip_bad=True)
        if test_cache.bad_ids:
            result.warnings.append(f"{len(test_cache.bad_ids)} test image(s) do not decode: predicted from grey")
        result.test_ids, result.test_bad_ids = list(test_cache.ids), list(test_cache.bad_ids)
        test_rows = tabular_rows(loaded, layout, "test", test_cache.ids)
        result.test_logits = stream_logits(
            loaded.model, test_cache, np.arange(len(test_cache)), recipe, loaded.mean, loaded.std, loaded.device,
            views, description=f"predicting {loaded.run.name}", rows=test_rows, **stream,
        ).mean  # fmt: skip
    return result
