"""What the target kinds fit on held-out predictions, as plain functions: a label set's threshold (one global, or
one per label) and a grade's cut points ("optimized rounder"). The kinds (targets) call them in `fit`;
competitions/posthoc cross-fits them."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .target_metrics import grade_kappa


def choose_labels(probs: np.ndarray, threshold) -> np.ndarray:
    """Labels at or above `threshold` (one for all labels, or one per label); a row with none takes its most
    likely label (a set is never empty, as every image of a label-set competition has at least one label)."""
    chosen = (np.asarray(probs) >= np.asarray(threshold, dtype=np.float64)).astype(np.int64)
    empty = chosen.sum(axis=1) == 0
    chosen[empty, np.asarray(probs)[empty].argmax(axis=1)] = 1
    return chosen


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def fit_threshold(truth: np.ndarray, probs: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float]) -> float:
    """One global threshold maximising `score` of the chosen sets on held-out predictions (a grid of 0.05..0.95;
    ties keep the one nearest 0.5). Kept a plain function so cross-fitting (inference/calibration) can call it."""
    if len(truth) == 0:
        return 0.5
    scores = np.array([score(truth, choose_labels(probs, t)) for t in THRESHOLD_GRID])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]])


def fit_label_thresholds(truth, probs, score: Callable[[np.ndarray, np.ndarray], float], start: float) -> list[float]:
    """One threshold per label: each label's in turn moved over a coarse grid with the others held, starting at
    the global `start` and kept unless beaten (rare labels then keep the global one). Cross-fitting judges
    whether these beat one global 0.5 on images they were not fitted on."""
    points = np.full(np.asarray(truth).shape[1], start)
    if len(truth) == 0:
        return points.tolist()
    best = score(truth, choose_labels(probs, points))
    for j in range(len(points)):
        for candidate in THRESHOLD_GRID[::5]:
            trial = points.copy()
            trial[j] = candidate
            value = score(truth, choose_labels(probs, trial))
            if value > best + 1e-12:
                best, points = value, trial
    return points.tolist()


def cut(values: np.ndarray, points) -> np.ndarray:
    """Grade = how many (sorted) cut points the value reaches."""
    return np.searchsorted(np.sort(np.asarray(points, dtype=np.float64)), np.asarray(values), side="right")


def fit_cut_points(truth: np.ndarray, values: np.ndarray, n_grades: int, rounds: int = 3) -> list[float]:
    """Cut points maximising QWK on held-out (truth, regressed values): coordinate search of each point between
    its neighbours, starting at k + 0.5 and kept unless beaten. A plain function so cross-fitting can call it."""
    points = np.arange(n_grades - 1) + 0.5
    if len(truth) == 0 or n_grades < 3:
        return points.tolist()
    best = grade_kappa(truth, cut(values, points), n_grades)
    for _ in range(rounds):
        for i in range(n_grades - 1):
            low = points[i - 1] if i else min(float(np.min(values)), 0.0)
            high = points[i + 1] if i < n_grades - 2 else max(float(np.max(values)), n_grades - 1.0)
            for candidate in np.linspace(low, high, 41)[1:-1]:
                trial = points.copy()
                trial[i] = candidate
                value = grade_kappa(truth, cut(values, trial), n_grades)
                if value > best + 1e-12:
                    best, points = value, trial
    return points.tolist()
