"""Is the best cell of an experiment better than the runner-up, or within the noise of its validation images?

A lead of 0.023 on 43 images is one image. The two cells' runs of the same seed validated on the same images (the
split follows the seed), so their predictions are paired image by image: the paired bootstrap of the metric's
difference (competitions/bootstrap.py) over those shared images says whether the lead survives resampling them. The
best cell is a win only where that 95% interval excludes zero; otherwise the report and `experiment` say "within
noise". A fold group contributes its out-of-fold predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..competitions.bootstrap import Difference, Interval, paired_difference
from ..competitions.metrics import Metric, softmax
from ..core.errors import KitError
from ..records.group_folder import FoldGroup, is_group
from ..records.run_folder import RunDir, best_row_interval


def held_out(path: Path) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(ids, labels, probabilities) a run validated (its best epoch) or a fold group's OOF rows; None if absent."""
    try:
        if is_group(path):
            oof = FoldGroup(path).oof()
            return list(oof.ids), np.asarray(oof.labels), softmax(oof.logits)
        ids, labels, logits = RunDir(path).val_predictions()
        return list(ids), np.asarray(labels), softmax(logits)
    except (KitError, OSError, KeyError, ValueError, AttributeError):
        return None


def _paired_rows(folder: Path, runs_a: list[dict], runs_b: list[dict]):
    """Labels and both cells' probabilities on the images runs of the same seed share, all seeds stacked."""
    by_seed = {row["seed"]: row for row in runs_b}
    labels, probs_a, probs_b, groups = [], [], [], []
    for row in runs_a:
        other = by_seed.get(row["seed"])
        first = held_out(folder / row["run_dir"])
        second = held_out(folder / other["run_dir"]) if other else None
        if first is None or second is None:
            continue
        position = {image_id: n for n, image_id in enumerate(second[0])}
        shared = [(n, position[i]) for n, i in enumerate(first[0]) if i in position]
        if not shared:
            continue
        a, b = np.array(shared).T
        labels.append(first[1][a])
        probs_a.append(first[2][a])
        probs_b.append(second[2][b])
        groups += [first[0][n] for n in a]  # one image across seeds is one observation, resampled as one
    if not labels:
        return None
    return np.concatenate(labels), np.concatenate(probs_a), np.concatenate(probs_b), np.array(groups)


def lead_over_runner_up(
    folder: Path, rows: list[dict[str, Any]], means: Mapping[str, float | None], metric: Metric
) -> tuple[str, str, Difference] | None:
    """(best cell, runner-up, the paired difference best - runner-up) on their shared validation images; None
    where there are not two ranked cells or they share no images."""
    ranked = [cell for cell, value in means.items() if value is not None and value == value]
    if len(ranked) < 2:
        return None
    ordered = sorted(ranked, key=lambda c: means[c], reverse=metric.higher_is_better)
    first, second = ordered[0], ordered[1]

    def finished(cell: str) -> list[dict]:
        return [r for r in rows if r["cell"] == cell and r["status"] == "finished"]

    paired = _paired_rows(Path(folder), finished(first), finished(second))
    if paired is None:
        return None
    labels, a, b, groups = paired
    return first, second, paired_difference(metric, labels, a, b, groups)


def describe_lead(lead: tuple[str, str, Difference] | None) -> str | None:
    if lead is None:
        return None
    first, second, difference = lead
    return f"{first} - {second} on the validation images they share (paired 95% bootstrap): {difference.describe()}"


def cell_intervals(folder: Path, rows: list[dict[str, Any]], metric: Metric) -> dict[str, str]:
    """Each cell's validation figure's spread over its images, for the report's table: one run's 95% bootstrap
    interval and n (its best epoch's, as history.csv stored it; a fold group's OOF interval), or with several
    seeds the images a run and the median half-width of one run's interval, beside the seed-to-seed std."""
    found: dict[str, list[Interval]] = {}
    for row in rows:
        if row.get("status") != "finished":
            continue
        if row.get("kind") == "group":
            interval = Interval.from_dict(row.get("val_interval"))
        else:
            interval = best_row_interval(RunDir(Path(folder) / row["run_dir"]).history(), metric)
        if interval is not None:
            found.setdefault(row["cell"], []).append(interval)
    texts = {}
    for cell, intervals in found.items():
        if len(intervals) == 1:
            texts[cell] = f" [{intervals[0].low:.3f}, {intervals[0].high:.3f}] n={intervals[0].n}"
        else:
            half = float(np.median([(i.high - i.low) / 2 for i in intervals]))
            texts[cell] = f" (n={intervals[0].n} a run, 95% interval ±{half:.3f} a run)"
    return texts
