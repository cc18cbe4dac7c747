"""After training and at predict time, for targets other than one label per image.

`fit_target_run` fits what the target kind applies to the model's values (a label set's threshold, a grade's cut
points) on the run's held-out predictions (val_predictions.npz, the best epoch's) and stores it in config.json as
`target_fit`, with the validation metric before and after. `predict_target` writes the test submission with it.
The values are the model's plain output: test-time augmentation and temperature belong to the label path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.targets import target_of
from ..core import progress
from ..records.run_folder import RunDir
from .streaming import IDENTITY, stream_logits


def fit_target_run(run_dir: Path | str) -> dict[str, Any]:
    """Fit the kind's post-training values on the run's held-out predictions; stored and returned."""
    from ..competitions.registry import resolve

    run = RunDir(run_dir)
    comp = resolve(run.read_config().competition)
    target = target_of(comp)
    ids, truth, logits = run.val_predictions()
    values = target.values(logits)
    fitted = target.fit(truth, values, comp.metric)
    record = {
        "fitted": fitted,
        "images": len(ids),
        "val_metric_default": target.score(comp.metric, truth, values, {}),
        "val_metric_fitted": target.score(comp.metric, truth, values, fitted),
    }
    run.update_config(target_fit=record)
    if fitted:
        shown = ", ".join(f"{k} {np.round(v, 3).tolist()}" for k, v in fitted.items())
        progress.say(
            f"fitted on {len(ids)} validation images (what predict uses): {shown}; validation "
            f"{comp.metric.describe(record['val_metric_fitted'])} (unfitted {record['val_metric_default']:.4f}; "
            "fitted and measured on the same images, so optimistic)"
        )
    return record


def stored_fit(run: RunDir) -> dict[str, Any]:
    return dict((run.config().get("target_fit") or {}).get("fitted") or {})


def predict_target(loaded, layout, path: Path, sample, batch_size: int | None, workers: int | None) -> dict[str, Any]:
    """The test submission of a label-set, value or grade run, with the run's fitted thresholds or cut points;
    returns the fields of `predict.PredictResult`."""
    from ..data.cache import load_images
    from ..submissions.target_writing import write_target_submission
    from .loading import tabular_rows

    comp, run = loaded.competition, loaded.run
    if not loaded.run.config().get("target_fit") and run.file("val_predictions.npz").is_file():
        fit_target_run(run.path)
    cache = load_images(layout, "test", loaded.recipe.cache_side, skip_bad=True)
    logits = stream_logits(
        loaded.model,
        cache,
        np.arange(len(cache)),
        loaded.recipe,
        loaded.mean,
        loaded.std,
        loaded.device,
        (IDENTITY,),
        batch_size=batch_size,
        workers=workers,
        description=f"predicting {run.name}",
        rows=tabular_rows(loaded, layout, "test", cache.ids),
    )
    record = run.config().get("target_fit") or {}
    values = target_of(comp).values(logits.mean)
    write_target_submission(
        path, comp, sample, layout.sample_path, list(cache.ids), values, loaded.classes, stored_fit(run)
    )
    return dict(  # predict_run's PredictResult
        path=path,
        competition=comp,
        rows=len(sample),
        tta=False,
        views=(IDENTITY,),
        temperature=1.0,
        tta_source=f"a {comp.target} target predicts without TTA",
        checkpoint=loaded.checkpoint,
        epoch=loaded.epoch,
        device=str(loaded.device),
        seconds=logits.seconds,
        images_per_s=logits.images_per_s,
        sample_path=layout.sample_path,
        calibration=None,
        val_metric=record.get("val_metric_fitted"),
    )
