"""A run's submission scored against answers (`kaggle-kit score`), and the validation figures described as
`predict` and `score` print them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..competitions.bootstrap import describe_figure
from ..competitions.registry import resolve
from ..core.errors import KitError
from ..records.run_folder import RunDir, display_epoch
from .calibration import calibrate_loaded, current_calibration
from .loading import load_run, open_run_layout
from .predict import decide_tta


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
    if resolve(RunDir(run_dir).read_config().competition).target != "label":
        return _score_target_run(run_dir, data_dir, checkpoint, recalibrate, device)
    loaded = load_run(run_dir, checkpoint, device)
    calibration = None if recalibrate else current_calibration(loaded)
    if calibration is None:
        calibration = calibrate_loaded(loaded, open_run_layout(loaded, data_dir))
    use_tta, source = decide_tta(loaded, None, calibration)
    return {
        "run": str(loaded.run.path),
        "competition": loaded.competition.name,
        "predict_tta": use_tta,
        "predict_tta_source": source,
        **calibration,
    }


def _score_target_run(run_dir, data_dir, checkpoint: str, recalibrate: bool, device: str) -> dict[str, Any]:
    """A label set's, value's, grade's or ranking's validation figures: the views and cross-fitted fit `train`
    stored (config.json's target_fit), which are exactly what predict applies; measured again with
    `recalibrate` (or when a run has none stored)."""
    from .target_predict import fit_target_run

    run = RunDir(run_dir)
    competition = run.read_config().competition
    if checkpoint != "best":  # the kind's fit and predict's answers are made for best.pt only
        raise KitError(
            f"score {run.path} --checkpoint {checkpoint}: a {resolve(competition).target} run's validation figures "
            "are fitted for best.pt, the one predict uses: drop --checkpoint"
        )
    record = run.config().get("target_fit")
    if recalibrate or not record:
        record = fit_target_run(run.path, data_dir, device)
    return {"run": str(run.path), "competition": competition, "target_fit": record}


def describe_scores(scores: dict[str, Any]) -> list[str]:
    """`score_run`'s numbers as lines for people, each metric with its direction in words; the configuration
    `predict` submits is marked, the others are labelled alternatives."""
    metric = resolve(scores["competition"]).metric
    if "target_fit" in scores:
        from .target_predict import describe_target_fit

        record = scores["target_fit"]
        epoch = display_epoch(record["epoch"])
        head = f"run {scores['run']} (best.pt, epoch {epoch}): {record['images']} validation images"
        return [head, *describe_target_fit(record, metric)]
    epoch = f", epoch {display_epoch(scores['epoch'])}" if scores.get("epoch") is not None else ""
    head = f"run {scores['run']} ({scores['checkpoint']}.pt{epoch})"
    if not scores.get("validated"):
        return [head, f"no validation score: {scores.get('reason', 'no validation split')}"]
    views = len(scores["tta_views"])
    used = "tta" if scores["predict_tta"] else "plain"
    cut = {kind: " + grade thresholds" if scores.get(f"thresholds_{kind}") else "" for kind in ("plain", "tta")}
    crossed = ", cross-fitted" if scores.get("cross_fitted") else ""
    rows = [
        ("no TTA", "plain", False),
        (f"TTA ({views} views)", "tta", False),
        (f"no TTA, calibrated{crossed} (T={scores['temperature_plain']:.3f}{cut['plain']})", "plain", True),
        (f"TTA, calibrated{crossed} (T={scores['temperature_tta']:.3f}{cut['tta']})", "tta", True),
    ]
    width = max(len(name) for name, _, _ in rows) + 1
    groups = f" in {scores['groups']} groups" if scores.get("groups") else ""
    lines = [f"{head}: {scores['images']} validation images{groups} (95% bootstrap intervals)"]
    for name, kind, calibrated in rows:
        key = f"{kind}_calibrated" if calibrated else kind
        mark = "  <- predict uses this" if calibrated and kind == used else ""
        figure = describe_figure(metric, scores.get(f"val_interval_{key}"), scores[f"val_metric_{key}"])
        lines.append(f"  {(name + ':').ljust(width)} {figure}{mark}")
    before, after = _log_losses(scores, used)
    lines.append(
        f"  log loss of what predict uses ({'TTA' if used == 'tta' else 'no TTA'}) before calibration {before:.4f}, "
        f"after {after:.4f} - lower is better"
        + ("" if metric.uses_temperature else " (the metric does not move with a temperature)")
    )
    tta = "on" if scores["predict_tta"] else "off"
    figure = describe_figure(
        metric, scores.get(f"val_interval_{used}_calibrated"), scores[f"val_metric_{used}_calibrated"]
    )
    lines.append(
        f"predict uses: TTA {tta} ({scores['predict_tta_source']}), "
        f"temperature {scores[f'temperature_{used}']:.3f}, validation{crossed} {figure}"
    )
    if scores.get("temperature_note") and used == ("tta" if scores["tta"] else "plain"):
        lines.append(f"note: {scores['temperature_note']}")
    if used == ("tta" if scores["tta"] else "plain"):
        lines.extend(f"note: {note}" for note in scores.get("fit_notes") or [])
    return lines


def _log_losses(scores: dict[str, Any], used: str) -> tuple[float, float]:
    """Validation log loss of the plain or TTA logits before and after their temperature."""
    before = scores[f"val_log_loss_{used}"]
    if "val_log_loss_plain_calibrated" in scores:
        return before, scores[f"val_log_loss_{used}_calibrated"]
    # a calibration stored before both were kept holds `after` of its own choice only
    return before, scores["val_log_loss_after"]


def calibrated_figure(metric, calibration: dict[str, Any], tta: bool | None = None) -> str:
    """`validation (cross-fitted) <metric> 0.6021 [0.480, 0.710] n=43 - higher is better` for the configuration
    predict submits (`tta` None: the stored choice), as `train` and `predict` print it."""
    used = "tta" if (calibration.get("tta") if tta is None else tta) else "plain"
    crossed = " (cross-fitted)" if calibration.get("cross_fitted") else ""
    value = calibration.get(f"val_metric_{used}_calibrated", calibration.get("val_metric"))
    return f"validation{crossed} {describe_figure(metric, calibration.get(f'val_interval_{used}_calibrated'), value)}"


def calibration_notes(calibration: dict[str, Any]) -> list[str]:
    """The notes of the stored choice: a fit left at its default (both scores), a temperature out of range."""
    notes = [calibration["temperature_note"]] if calibration.get("temperature_note") else []
    return notes + list(calibration.get("fit_notes") or [])
