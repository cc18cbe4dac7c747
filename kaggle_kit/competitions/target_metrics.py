"""Metrics of the targets that are not one label per image: label sets, values, grades and ranked answers.

Each function takes the truth and the model's values in its target kind's form (see `targets`): label sets as
0/1 indicator matrices (n, labels), values and grades as (n,) arrays, ranked answers as (n, k) class indices.
Each is scikit-learn's definition (tests/competitions/test_targets.py checks them against scikit-learn on the same
arrays); where Kaggle differs the function says how. AUC, F1 and kappa are computed in numpy, as the label
metrics in `metrics` are: the post-hoc fits (thresholds, cut points) and their bootstrap intervals score
thousands of candidate answers, and scikit-learn's input checks cost about a millisecond a call, which made one
cross-fitted run's fit take tens of seconds.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import KitError
from .metrics import Metric, binary_auc, kappa


def column_aucs(truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """ROC AUC of each label column (NaN for a column holding one class only, which has no ROC curve)."""
    truth, probs = np.asarray(truth), np.asarray(probs, dtype=np.float64)
    out = np.full(truth.shape[1], np.nan)
    for j in range(truth.shape[1]):
        if 0 < truth[:, j].sum() < len(truth):
            out[j] = binary_auc(truth[:, j] == 1, probs[:, j])
    return out


def mean_column_auc(truth: np.ndarray, probs: np.ndarray) -> float:
    """Kaggle's "mean column-wise ROC AUC": scikit-learn's roc_auc_score(average="macro") over the columns.
    Where Kaggle differs: scikit-learn refuses a column with one class only (Kaggle's hidden set has both in every
    column); a small validation split may not, so such a column is left out of the mean here."""
    aucs = column_aucs(truth, probs)
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


def _f1(average: str):
    def score(truth: np.ndarray, chosen: np.ndarray) -> float:
        """F1 of 0/1 label-set indicators (scikit-learn's f1_score); a row or label with nothing true and nothing
        chosen counts 0, as scikit-learn's zero_division=0 and Kaggle's F-score do."""
        if len(truth) == 0:
            return float("nan")
        truth, chosen = np.asarray(truth) == 1, np.asarray(chosen) == 1
        axis = {"samples": 1, "macro": 0, "micro": None}[average]
        hits = np.sum(truth & chosen, axis=axis)
        either = np.sum(truth, axis=axis) + np.sum(chosen, axis=axis)
        return float(np.mean(np.where(either > 0, 2 * hits / np.maximum(either, 1), 0.0)))

    return score


def rmse(truth: np.ndarray, values: np.ndarray) -> float:
    if len(truth) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((np.asarray(truth, dtype=np.float64) - np.asarray(values, np.float64)) ** 2)))


def grade_kappa(truth: np.ndarray, grades: np.ndarray, n_grades: int) -> float:
    """Quadratic weighted kappa of integer grades 0..n_grades-1 (scikit-learn's cohen_kappa_score). Where Kaggle
    differs: scikit-learn weighs only the grades present unless told the labels, and a missing middle grade would
    shrink the distances; Kaggle weighs the whole declared range, as `metrics.kappa` does (scikit-learn's score
    with labels=range(n_grades))."""
    return kappa(truth, grades, n_grades)


def map_at_k(truth: np.ndarray, ranked: np.ndarray) -> float:
    """Mean average precision at k of ranked answers (n, k) against one true class per row: a hit at rank r
    scores 1/r, once (a repeat of the true class later in the row scores nothing). Hand-written: scikit-learn has
    no MAP@k over ranked answers (its average_precision_score ranks every class by a score)."""
    truth, ranked = np.asarray(truth), np.asarray(ranked)
    if len(truth) == 0:
        return float("nan")
    hits = ranked == truth[:, None]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return float(np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0).mean())


MEAN_AUC = Metric(
    "mean_auc",
    mean_column_auc,
    higher_is_better=True,
    label="mean column-wise ROC AUC",
    aliases=("Mean Columnwise ROC AUC", "Mean Column Wise ROC AUC", "mean column-wise auc", "column-wise auc"),
)
F1_SAMPLES = Metric(
    "f1-samples",
    _f1("samples"),
    higher_is_better=True,
    label="mean F1 over label sets",
    aliases=("Mean F1 Score", "Mean F1", "F1 Samples", "samples F1", "Mean F2 Score"),
)
RMSE = Metric("rmse", rmse, higher_is_better=False, label="RMSE", aliases=("Root Mean Squared Error", "RMS Error"))
MAP_AT_K = Metric(
    "map_at_k",
    map_at_k,
    higher_is_better=True,
    label="MAP@k",
    aliases=("MAP@5", "MAP@3", "MAP@K", "Mean Average Precision @ 5", "Mean Average Precision at k", "map5"),
)
TARGET_METRICS = {m.name: m for m in (MEAN_AUC, F1_SAMPLES, RMSE, MAP_AT_K)}


def target_metric_by_name(text: str) -> Metric:
    """A target metric (mean AUC, F1 over sets, RMSE, MAP@k) or, failing that, a label metric by any of its names."""
    from .metrics import _plain, metric_by_name

    names = {_plain(n): m for m in TARGET_METRICS.values() for n in (m.name, m.key, m.label, *m.aliases)}
    if _plain(text) in names:
        return names[_plain(text)]
    try:
        return metric_by_name(text)
    except KitError as error:
        ours = ", ".join(m.key for m in TARGET_METRICS.values())
        raise KitError(f"{error}; for other targets: {ours}") from None
