"""Streamed inference with test-time augmentation and temperature -> a checked submission file.

    run folder (config.json + best.pt/last.pt) -> model -> test images, batch by batch, from the uint8
    cache -> logits averaged over the TTA views -> softmax(logits / T) -> write in the sample's exact
    format (staged) -> validate -> rename into place

Memory: images stay in the uint8 cache (a memory map) and only one batch at a time becomes floats, so
CIFAR-10's 300,000 test images cost one batch of floats plus a (300,000 x 10) float32 logit array.

TTA views: the image and its horizontal flip; at a competition's native size (CIFAR-10's 32x32) also
the image shifted by 2 pixels left, right, up and down (reflect padding, as the training translation
pads). Views are averaged in logit space, not probability space: one logit row per image keeps the
temperature fit and the saved validation logits the same shape with or without TTA, and a logit mean
is the renormalised geometric mean of the views' probabilities, which punishes a view's confident
mistake less than it rewards agreement - no worse than a probability mean in published TTA results.

Calibration (`calibrate_run`): the checkpoint is evaluated on the run's validation split with and
without TTA; a temperature is fitted to each (minimising validation log loss, clipped as Kaggle clips);
TTA is chosen when it improves the calibrated competition metric. A recipe's `tta` "on"/"off" overrides
the choice ("auto" follows it), and the stored choice, temperature and figures are those of what `predict`
then submits, so every calibrated number printed is the submission's own validation score. They go into
config.json per checkpoint (`calibration: {"best": ..., "last": ...}`; best.pt's also as the top-level
`tta` and `temperature`), and `predict_run` applies them; `predict --tta/--no-tta` picks the other
configuration, whose temperature and figure are stored beside it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..competitions.metrics import (
    Metric,
    calibrating_temperature,
    fit_qwk_thresholds,
    log_loss,
    one_hot_grades,
    softmax,
)
from ..competitions.registry import Competition, all_competitions, resolve
from ..config.recipe import Recipe
from ..core import progress
from ..core.errors import KitError
from ..data.batches import cache_short_side, eval_batches
from ..data.cache import ImageCache, load_images
from ..records.run_config import RunConfig
from ..records.run_folder import RunDir, display_epoch
from ..training.device import autocast_dtype, images_to_device, resolve_device, use_channels_last

CHECKPOINTS = ("best", "last", "swa")  # swa.pt: a run trained with --swa-epochs
TTA_SHIFT = 2  # pixels; small next to the training translation (4), so a shifted view stays in-distribution
IDENTITY, HFLIP = "identity", "hflip"
SHIFTS = {
    "shift-left": (-TTA_SHIFT, 0),
    "shift-right": (TTA_SHIFT, 0),
    "shift-up": (0, -TTA_SHIFT),
    "shift-down": (0, TTA_SHIFT),
}


# --------------------------------------------------------------------------------------- the run


@dataclass
class LoadedRun:
    """A run folder's settings and its model with the checkpoint's weights, ready to evaluate."""

    run: RunDir
    config: RunConfig
    competition: Competition
    recipe: Recipe
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    model: torch.nn.Module
    checkpoint: str
    epoch: int | None
    device: torch.device


def load_run(run_dir: Path | str, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """Read config.json, rebuild the model and load the checkpoint's evaluation weights onto `device`."""
    from ..models import factory as models

    if checkpoint not in CHECKPOINTS:
        raise KitError(f"unknown checkpoint '{checkpoint}': use --checkpoint best, last or swa")
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise KitError(
            f"run folder {run.path} does not exist: pass a folder made by `kaggle-kit train` (runs/<competition>/...)"
        )
    config = run.read_config()
    required = (
        ("competition", config.competition),
        ("recipe", config.recipe_dict),
        ("classes", config.classes),
        ("normalization", config.normalization),
    )
    for key, value in required:
        if value is None:
            raise KitError(
                f"{run.file('config.json')}: field '{key}' is missing; the run folder is damaged - train again"
            )
    competition = resolve(config.competition)
    # the checkpoint holds every weight: no ImageNet download, no weights file needed at predict time
    recipe = config.recipe.replace(pretrained=False, weights=None)
    classes = list(config.classes)
    mean, std = config.mean, config.std
    state = run.load_checkpoint(checkpoint)
    if "model" not in state:
        raise KitError(
            f"{run.file(checkpoint + '.pt')}: no 'model' weights inside; the checkpoint is not from `kaggle-kit train`"
        )
    model = models.build_model(recipe, len(classes))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else str(error)
        raise KitError(
            f"{run.file(checkpoint + '.pt')} does not fit the model config.json describes ({recipe.arch}, "
            f"{len(classes)} classes): {first[:160]}; the run folder is damaged or mixed - train again"
        ) from None
    target = resolve_device(device)
    model.to(target).eval()
    if use_channels_last(recipe, target):
        model = model.to(memory_format=torch.channels_last)
    epoch = state.get("epoch")
    return LoadedRun(
        run,
        config,
        competition,
        recipe,
        classes,
        mean,
        std,
        model,
        checkpoint,
        int(epoch) if epoch is not None else None,
        target,
    )


def open_run_layout(loaded: LoadedRun, data_dir: Path | str | None = None):
    """The run's competition data (`data_dir`, else the folder it was trained on), classes checked."""
    from ..data.layout import default_data_dir, open_layout

    comp, config = loaded.competition, loaded.config
    given = data_dir or config.data_dir
    folder = Path(given) if given else default_data_dir(comp)
    other = _other_competition_in(folder, comp)
    if other is not None:
        raise KitError(
            f"{folder} holds {other.slug} data but {loaded.run.path} is a {comp.name} run: "
            f"pass the {comp.slug} data folder with --data-dir"
        )
    try:
        layout = open_layout(comp, folder)
    except KitError as error:
        if data_dir:
            raise
        raise KitError(f"{error} (the run's data folder, from config.json; pass --data-dir to use another)") from None
    if layout.classes != loaded.classes:
        k = next(
            (i for i, (a, b) in enumerate(zip(layout.classes, loaded.classes)) if a != b),
            min(len(layout.classes), len(loaded.classes)),
        )
        found = repr(layout.classes[k]) if k < len(layout.classes) else "nothing"
        expected = repr(loaded.classes[k]) if k < len(loaded.classes) else "nothing"
        raise KitError(
            f"the classes of {layout.sample_path} differ from the run's at class {k + 1}: {found} where the run "
            f"has {expected}; predict with the data the run was trained on"
        )
    return layout


def _other_competition_in(folder: Path, comp: Competition) -> Competition | None:
    """Another competition whose download or sample submission `folder` plainly holds (and `comp`'s does not)."""
    if folder.is_file() and folder.suffix == ".zip":
        folder, names = folder.parent, {folder.name}
    elif folder.is_dir():
        names = {entry.name for entry in os.scandir(folder)}
    else:
        return None

    def holds(c: Competition) -> bool:
        return bool(names & {c.archive_name, c.sample_file, f"{c.sample_file}.zip"})

    if holds(comp):
        return None
    return next((c for c in all_competitions().values() if c.name != comp.name and holds(c)), None)


# --------------------------------------------------------------------------------------- TTA views


def tta_views(comp: Competition, recipe: Recipe) -> tuple[str, ...]:
    """The TTA views for this competition and input size; the identity always comes first."""
    views = (IDENTITY, HFLIP)
    if comp.native_size and recipe.img_size == comp.native_size:
        views += tuple(SHIFTS)
    return views


def apply_view(x: torch.Tensor, view: str) -> torch.Tensor:
    """One TTA view of a normalised NCHW batch. Shifts move the content by (dx, dy) pixels, filling the
    uncovered border by reflection (normalisation is per-channel affine, so reflecting normalised values
    equals reflecting pixels)."""
    if view == IDENTITY:
        return x
    if view == HFLIP:
        return x.flip(-1)
    if view not in SHIFTS:
        raise ValueError(f"unknown TTA view {view!r}")
    dx, dy = SHIFTS[view]
    pad = TTA_SHIFT
    height, width = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    top, left = pad - dy, pad - dx
    return padded[..., top : top + height, left : left + width]


# --------------------------------------------------------------------------------------- streaming


@dataclass
class Logits:
    """Per-image logits (float32, n x classes): averaged over the views, and of the identity view alone."""

    mean: np.ndarray
    identity: np.ndarray
    views: tuple[str, ...]
    seconds: float
    path: str  # "array" or "loader": how the batches were made

    @property
    def images_per_s(self) -> float:
        return len(self.mean) / max(self.seconds, 1e-9)


@torch.inference_mode()
def stream_logits(
    model: torch.nn.Module,
    cache: ImageCache,
    indices: np.ndarray,
    recipe: Recipe,
    mean,
    std,
    device: torch.device,
    views: tuple[str, ...] = (IDENTITY,),
    batch_size: int | None = None,
    workers: int | None = None,
    description: str = "predicting",
    batch_path: str = "auto",
) -> Logits:
    """The model's logits for `cache[indices]`, one batch of floats at a time, with a progress bar.

    `batch_path`: "auto" (array when possible, see `batches.use_array_path`), "array" or "loader".
    """
    if views[0] != IDENTITY:
        raise ValueError("the identity view must come first")
    indices = np.asarray(indices, dtype=np.int64)
    batch_size = batch_size or recipe.batch_size * 2
    dtype = autocast_dtype(device, recipe)
    channels_last = use_channels_last(recipe, device)
    batches, path = eval_batches(cache, indices, recipe, mean, std, device, batch_size, workers, batch_path)
    model.eval()
    mean_logits: np.ndarray | None = None
    identity_logits: np.ndarray | None = None
    done = 0
    started = time.perf_counter()
    with progress.bar(len(indices), description) as bar:
        for x in batches:
            x = images_to_device(x, device, channels_last)
            total = None
            first = None
            for view in views:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    out = model(apply_view(x, view)).float()
                total = out if total is None else total + out
                if first is None:
                    first = out
            if mean_logits is None:  # the class count is known from the first batch
                mean_logits = np.empty((len(indices), total.shape[1]), np.float32)
                identity_logits = np.empty_like(mean_logits) if len(views) > 1 else mean_logits
            n = x.shape[0]
            mean_logits[done : done + n] = (total / len(views)).cpu().numpy()
            if len(views) > 1:
                identity_logits[done : done + n] = first.cpu().numpy()
            done += n
            bar.advance(n, postfix=f"{len(views)} view{'s' if len(views) > 1 else ''}")
    seconds = time.perf_counter() - started
    if mean_logits is None:
        mean_logits = identity_logits = np.zeros((0, 0), np.float32)
    if done != len(indices):
        raise RuntimeError(f"predicted {done} images of {len(indices)}")
    return Logits(mean_logits, identity_logits, tuple(views), seconds, path)


# --------------------------------------------------------------------------------------- calibration


def _validation_indices(loaded: LoadedRun, layout, cache: ImageCache) -> tuple[np.ndarray, np.ndarray]:
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
    indices, labels = _validation_indices(loaded, layout, cache)
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


# --------------------------------------------------------------------------------------- predicting


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


def _decide_tta(loaded: LoadedRun, tta: bool | None, calibration: dict[str, Any] | None) -> tuple[bool, str]:
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
) -> CalibratedProbabilities:
    """`loaded`'s probabilities for the test set with its stored TTA choice and temperature (what `predict`
    submits). `tta` None follows the recipe or the calibration; `calibrated` measures a missing or stale
    calibration even where the submission would not need it (pseudo-labels threshold the probabilities)."""
    comp, recipe, run = loaded.competition, loaded.recipe, loaded.run
    calibration = current_calibration(loaded)
    # label submissions take the argmax, which no temperature changes: calibrate only when it can matter
    temperature_matters = comp.submission_kind != "label" and comp.metric.uses_temperature
    temperature_matters |= comp.submission_kind == "label" and comp.metric.fits_thresholds  # so are thresholds
    tta_needs_it = tta is None and recipe.tta == "auto"
    if calibration is None and (calibrated or temperature_matters or tta_needs_it):
        calibration = calibrate_loaded(loaded, layout, batch_size, workers)
    use_tta, tta_source = _decide_tta(loaded, tta, calibration)
    temperature, val_metric = 1.0, None
    if calibration is not None and calibration.get("validated"):
        temperature = float(calibration["temperature_tta" if use_tta else "temperature_plain"])
        val_metric = float(calibration["val_metric_tta_calibrated" if use_tta else "val_metric_plain_calibrated"])

    # every test id needs a row, so an image that does not decode is predicted from the cache's grey
    # placeholder and reported, rather than stopping the whole prediction
    cache = load_images(layout, "test", cache_short_side(recipe), skip_bad=True)
    warnings = []
    if cache.bad_ids:
        shown = ", ".join(str(layout.test.path(i)) for i in cache.bad_ids[:3])
        more = f" and {len(cache.bad_ids) - 3} more" if len(cache.bad_ids) > 3 else ""
        warnings.append(
            f"{len(cache.bad_ids)} test image(s) do not decode ({shown}{more}): their rows are predicted "
            f"from a grey placeholder; download the data again for a true prediction"
        )
    views = tta_views(comp, recipe) if use_tta else (IDENTITY,)
    logits = stream_logits(
        loaded.model,
        cache,
        np.arange(len(cache)),
        recipe,
        loaded.mean,
        loaded.std,
        loaded.device,
        views,
        batch_size=batch_size,
        workers=workers,
        description=f"predicting {run.name}",
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
) -> PredictResult:
    """Predict every test image of the run's competition and write a validated submission.

    The file goes to `out`, default `submissions/<competition>/<run name>.csv`. `tta` None follows the
    recipe (on/off) or the run's calibration (auto); the calibration is made first when missing or stale.
    """
    from ..submissions.files import read_sample, write_checked_submission
    from ..submissions.provenance import record_written

    loaded = load_run(run_dir, checkpoint, device)
    comp, run = loaded.competition, loaded.run
    layout = open_run_layout(loaded, data_dir)
    path = Path(out) if out else Path("submissions") / comp.name / f"{run.name}.csv"
    if path.is_dir():
        raise KitError(f"--out {path} is a folder: give the submission's file name, e.g. {path / (run.name + '.csv')}")
    sample = read_sample(layout.sample_path, comp)  # a bad sample fails before minutes of inference

    test = calibrated_test_probabilities(loaded, layout, tta, batch_size=batch_size, workers=workers)
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
        device=str(loaded.device),
        seconds=test.seconds,
        images_per_s=test.images_per_s,
        sample_path=layout.sample_path,
        calibration=test.calibration,
        val_metric=test.val_metric,
        warnings=test.warnings,
    )


# --------------------------------------------------------------------------------------- scoring a run


def score_run(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    checkpoint: str = "best",
    *,
    recalibrate: bool = False,
    device: str = "auto",
) -> dict[str, Any]:
    """The competition metric on the validation split, before and after TTA and calibration.

    Uses the stored calibration of this checkpoint when there is one (it holds exactly these numbers),
    otherwise measures and stores it.
    """
    loaded = load_run(run_dir, checkpoint, device)
    calibration = None if recalibrate else current_calibration(loaded)
    if calibration is None:
        calibration = calibrate_loaded(loaded, open_run_layout(loaded, data_dir))
    use_tta, source = _decide_tta(loaded, None, calibration)
    return {
        "run": str(loaded.run.path),
        "competition": loaded.competition.name,
        "predict_tta": use_tta,
        "predict_tta_source": source,
        **calibration,
    }


def describe_scores(scores: dict[str, Any]) -> list[str]:
    """`score_run`'s numbers as lines for people, each metric with its direction in words; the configuration
    `predict` submits is marked, the others are labelled alternatives."""
    metric = resolve(scores["competition"]).metric
    epoch = f", epoch {display_epoch(scores['epoch'])}" if scores.get("epoch") is not None else ""
    head = f"run {scores['run']} ({scores['checkpoint']}.pt{epoch})"
    if not scores.get("validated"):
        return [head, f"no validation score: {scores.get('reason', 'no validation split')}"]
    views = len(scores["tta_views"])
    used = "tta" if scores["predict_tta"] else "plain"
    cut = {used: " + grade thresholds" if scores.get(f"thresholds_{used}") else "" for used in ("plain", "tta")}
    rows = [
        ("no TTA", scores["val_metric_plain"], None),
        (f"TTA ({views} views)", scores["val_metric_tta"], None),
        (
            f"no TTA, calibrated (T={scores['temperature_plain']:.3f}{cut['plain']})",
            scores["val_metric_plain_calibrated"],
            "plain",
        ),
        (
            f"TTA, calibrated (T={scores['temperature_tta']:.3f}{cut['tta']})",
            scores["val_metric_tta_calibrated"],
            "tta",
        ),
    ]
    width = max(len(name) for name, _, _ in rows) + 1
    lines = [f"{head}: {scores['images']} validation images"]
    for name, value, kind in rows:
        mark = "  <- predict uses this" if kind == used else ""
        lines.append(f"  {(name + ':').ljust(width)} {metric.describe(value)}{mark}")
    before, after = _log_losses(scores, used)
    lines.append(
        f"  log loss of what predict uses ({'TTA' if used == 'tta' else 'no TTA'}) before calibration {before:.4f}, "
        f"after {after:.4f} - lower is better"
        + ("" if metric.uses_temperature else " (the metric does not move with a temperature)")
    )
    tta = "on" if scores["predict_tta"] else "off"
    lines.append(
        f"predict uses: TTA {tta} ({scores['predict_tta_source']}), "
        f"temperature {scores[f'temperature_{used}']:.3f}, "
        f"validation {metric.describe(scores[f'val_metric_{used}_calibrated'])}"
    )
    if scores.get("temperature_note") and used == ("tta" if scores["tta"] else "plain"):
        lines.append(f"note: {scores['temperature_note']}")
    return lines


def _log_losses(scores: dict[str, Any], used: str) -> tuple[float, float]:
    """Validation log loss of the plain or TTA logits before and after their temperature."""
    before = scores[f"val_log_loss_{used}"]
    if "val_log_loss_plain_calibrated" in scores:
        return before, scores[f"val_log_loss_{used}_calibrated"]
    # a calibration stored before both were kept holds `after` of its own choice only
    return before, scores["val_log_loss_after"]


# --------------------------------------------------------------------------------------- logits for a group or blend


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
) -> RunLogits:
    """best.pt's held-out logits (with `held_out`; streamed again, so they match the TTA choice) and its test logits
    (with `test`). The run is calibrated first when its stored calibration is missing or stale."""
    loaded = load_run(run_dir, "best", device)
    layout = open_run_layout(loaded, data_dir)
    if not loaded.run.file("val_predictions.npz").is_file():
        raise KitError(
            f"{loaded.run.path} has no held-out predictions (trained with --full-train or no finished epoch): "
            f"it cannot be weighed or calibrated; use a run with a validation split"
        )
    calibration = current_calibration(loaded) or calibrate_loaded(loaded, layout, batch_size, workers)
    use_tta, _ = _decide_tta(loaded, None, calibration)
    views = tta_views(loaded.competition, loaded.recipe) if use_tta else (IDENTITY,)
    recipe = loaded.recipe
    stream = dict(batch_size=batch_size, workers=workers)
    val_ids, labels, logits = [], np.zeros(0, np.int64), np.zeros((0, len(loaded.classes)), np.float32)
    if held_out:
        train_cache = load_images(layout, "train", cache_short_side(recipe), skip_bad=recipe.skip_bad_images)
        indices, labels = _validation_indices(loaded, layout, train_cache)
        val_ids = [train_cache.ids[i] for i in indices]
        logits = stream_logits(
            loaded.model, train_cache, indices, recipe, loaded.mean, loaded.std, loaded.device, views,
            description=f"held-out {loaded.run.name}", **stream,
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
    )
    if test:
        test_cache = load_images(layout, "test", cache_short_side(recipe), skip_bad=True)
        if test_cache.bad_ids:
            result.warnings.append(f"{len(test_cache.bad_ids)} test image(s) do not decode: predicted from grey")
        result.test_ids, result.test_bad_ids = list(test_cache.ids), list(test_cache.bad_ids)
        result.test_logits = stream_logits(
            loaded.model, test_cache, np.arange(len(test_cache)), recipe, loaded.mean, loaded.std, loaded.device,
            views, description=f"predicting {loaded.run.name}", **stream,
        ).mean  # fmt: skip
    return result
