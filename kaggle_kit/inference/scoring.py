"""A run's submission scored against answers (`kaggle-kit score`), and the validation figures described as
`predict` and `score` print them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..competitions.registry import resolve
from ..competitions.targets import refuse_other_targets
from ..records.run_folder import display_epoch
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
    loaded = load_run(run_dir, checkpoint, device)
    refuse_other_targets(loaded.competition, "score RUN_DIR (config.json's target_fit holds the validation figures)")
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
