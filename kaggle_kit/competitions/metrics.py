"""Competition metrics with their direction, Kaggle's log-loss clipping, and temperature fitting.

Inputs are plain numpy: `labels` holds class indices (n,), `probs` holds probabilities (n, classes). Two-class
metrics read column 1 as the positive class; for log loss and ROC AUC the choice does not change the score,
since the two columns of a row sum to 1. `metric_by_name` finds a metric by our name or Kaggle's.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.errors import KitError

KAGGLE_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    label: str  # in words, e.g. "log loss"
    # other names it goes by: Kaggle's evaluation-metric names, and spellings a person types
    aliases: tuple[str, ...] = ()
    # a temperature fitted for this metric changes its score (log loss); for the others it is left at 1
    uses_temperature: bool = False
    # a label submission is scored better by grades cut from the expected grade at thresholds fitted on
    # validation (QWK) than by the argmax
    fits_thresholds: bool = False
    # (column name, fn(labels, probs) -> one score per class) for a metric that is no mean over rows, so that the
    # metric on one class's images alone means nothing (AUC, macro F1, QWK); None: the metric on each class's images
    per_class: tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None
    # scores the classes as ordered grades (QWK): meaningless on unordered names such as dog breeds
    ordinal: bool = False

    @property
    def key(self) -> str:
        """The name `--metric` and declarations use: the stored name without underscores (log_loss -> logloss;
        run folders and ledgers keep the stored name, which `metric_by_name` reads too)."""
        return self.name.replace("_", "")

    def __call__(self, labels: np.ndarray, probs: np.ndarray) -> float:
        return float(self.fn(np.asarray(labels), np.asarray(probs, dtype=np.float64)))

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def describe(self, value: float) -> str:
        return f"{self.label} {value:.4f} - {self.direction}"

    def better(self, a: float, b: float | None) -> bool:
        """True when `a` beats `b` in this metric's direction (any value beats None or NaN)."""
        if b is None or np.isnan(b):
            return not np.isnan(a)
        return a > b if self.higher_is_better else a < b

    def best(self, values):
        values = [v for v in values if v is not None and not np.isnan(v)]
        if not values:
            return None
        return max(values) if self.higher_is_better else min(values)

    @property
    def worst(self) -> float:
        return -np.inf if self.higher_is_better else np.inf


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    if len(labels) == 0:
        return float("nan")
    return float((probs.argmax(axis=1) == labels).mean())


def kaggle_clip(probs: np.ndarray) -> np.ndarray:
    """Kaggle's treatment of a probability submission: rows rescaled to sum 1, then clipped."""
    probs = np.asarray(probs, dtype=np.float64)
    sums = probs.sum(axis=1, keepdims=True)
    probs = probs / np.where(sums > 0, sums, 1.0)
    return np.clip(probs, KAGGLE_EPS, 1 - KAGGLE_EPS)


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class log loss exactly as Kaggle scores it (row rescaling, then clipping at 1e-15)."""
    if len(labels) == 0:
        return float("nan")
    clipped = kaggle_clip(probs)
    return float(-np.log(clipped[np.arange(len(labels)), labels]).mean())


def binary_log_loss(labels: np.ndarray, positive: np.ndarray) -> float:
    """Kaggle's binary log loss of one probability column for the positive class (labels 0/1): clipped at 1e-15,
    never rescaled (a single column has nothing to rescale against)."""
    labels, positive = np.asarray(labels), np.clip(np.asarray(positive, dtype=np.float64), KAGGLE_EPS, 1 - KAGGLE_EPS)
    if len(labels) == 0:
        return float("nan")
    return float(-np.mean(np.where(labels == 1, np.log(positive), np.log(1 - positive))))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank (what makes ROC AUC count a tie as half)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse]


def binary_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); NaN when only one class is present."""
    is_positive = np.asarray(is_positive, dtype=bool)
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Two classes: ROC AUC of column 1. More: one-vs-rest macro average (as scikit-learn's multi_class="ovr")
    over the classes that occur in `labels`, since a class with no positives has no ROC curve."""
    if probs.shape[1] == 2:
        return binary_auc(labels == 1, probs[:, 1])
    per_class = [binary_auc(labels == k, probs[:, k]) for k in np.unique(labels)]
    per_class = [a for a in per_class if not np.isnan(a)]
    return float(np.mean(per_class)) if per_class else float("nan")


def auc_per_class(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each class against the rest (NaN for a class that never occurs)."""
    return np.array([binary_auc(labels == k, probs[:, k]) for k in range(probs.shape[1])])


def f1_per_class(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each class's F1 of the argmax (NaN for a class neither true nor predicted)."""
    predicted = probs.argmax(axis=1)
    hits = np.bincount(labels[predicted == labels], minlength=probs.shape[1])
    either = np.bincount(predicted, minlength=probs.shape[1]) + np.bincount(labels, minlength=probs.shape[1])
    return np.where(either > 0, 2 * hits / np.maximum(either, 1), np.nan)


def recall_per_class(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The share of each class's images given that class (NaN for a class with none)."""
    hits = np.bincount(labels[probs.argmax(axis=1) == labels], minlength=probs.shape[1])
    total = np.bincount(labels, minlength=probs.shape[1])
    return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def f1_micro(labels: np.ndarray, probs: np.ndarray) -> float:
    """Micro-averaged F1 of the argmax; with one label per image every miss is one false positive and one false
    negative, so it equals accuracy."""
    return accuracy(labels, probs)


def f1_macro(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean F1 per class of the argmax, over the classes that occur in labels or predictions (as scikit-learn)."""
    if len(labels) == 0:
        return float("nan")
    predicted = probs.argmax(axis=1)
    scores = []
    for k in np.union1d(labels, predicted):
        true_pos = np.sum((predicted == k) & (labels == k))
        scores.append(2 * true_pos / (np.sum(predicted == k) + np.sum(labels == k)))
    return float(np.mean(scores))


def kappa(labels: np.ndarray, grades: np.ndarray, n_grades: int) -> float:
    """Quadratic weighted kappa of integer grades 0..n_grades-1 (the whole range weighs, present or not)."""
    labels, grades = np.asarray(labels, dtype=np.int64), np.asarray(grades, dtype=np.int64)
    if len(labels) == 0:
        return float("nan")
    observed = np.bincount(labels * n_grades + grades, minlength=n_grades * n_grades).reshape(n_grades, n_grades)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(labels)
    weights = np.subtract.outer(np.arange(n_grades), np.arange(n_grades)) ** 2
    disagreement = (weights * expected).sum()
    return float(1 - (weights * observed).sum() / disagreement) if disagreement else float("nan")


def qwk(labels: np.ndarray, probs: np.ndarray) -> float:
    """Quadratic weighted kappa of the argmax, the classes taken in declared order as grades."""
    return kappa(labels, probs.argmax(axis=1), probs.shape[1])


def expected_grade(probs: np.ndarray) -> np.ndarray:
    """sum_k k * p_k per row: the grade the probabilities expect, which thresholds cut into grades."""
    return np.asarray(probs, dtype=np.float64) @ np.arange(probs.shape[1])


def grades_from_thresholds(probs: np.ndarray, thresholds) -> np.ndarray:
    """Grade = how many (sorted) thresholds the expected grade reaches."""
    return np.searchsorted(np.sort(np.asarray(thresholds, dtype=np.float64)), expected_grade(probs), side="right")


def one_hot_grades(probs: np.ndarray, thresholds) -> np.ndarray:
    """Probabilities whose argmax is the thresholded grade: what a label submission then writes."""
    return np.eye(probs.shape[1])[grades_from_thresholds(probs, thresholds)]


def fit_qwk_thresholds(labels: np.ndarray, probs: np.ndarray, rounds: int = 3) -> list[float]:
    """Thresholds on the expected grade that maximise QWK on (validation) labels, by coordinate search over each
    threshold in turn between its neighbours; starts at the halfway points k + 0.5 and keeps them unless beaten."""
    labels, n = np.asarray(labels), probs.shape[1]
    thresholds = np.arange(n - 1) + 0.5
    if len(labels) == 0 or n < 3:
        return thresholds.tolist()
    expected = expected_grade(probs)
    best = kappa(labels, np.searchsorted(thresholds, expected, side="right"), n)
    for _ in range(rounds):
        for i in range(n - 1):
            low = thresholds[i - 1] if i else 0.0
            high = thresholds[i + 1] if i < n - 2 else n - 1.0
            for candidate in np.linspace(low, high, 41)[1:-1]:
                trial = thresholds.copy()
                trial[i] = candidate
                value = kappa(labels, np.searchsorted(trial, expected, side="right"), n)
                if value > best + 1e-12:
                    best, thresholds = value, trial
    return thresholds.tolist()


ACCURACY = Metric(
    "accuracy",
    accuracy,
    higher_is_better=True,
    label="accuracy",
    aliases=("Categorization Accuracy", "Classification Accuracy", "acc"),
)
LOG_LOSS = Metric(
    "log_loss",
    log_loss,
    higher_is_better=False,
    label="log loss",
    aliases=(
        "Multi Class Log Loss",
        "Multiclass Log Loss",
        "mlogloss",
        "Log Loss",
        "Binary Log Loss",
        "Logarithmic Loss",
    ),
    uses_temperature=True,
)
AUC = Metric(
    "auc",
    roc_auc,
    higher_is_better=True,
    label="ROC AUC",
    aliases=("Area Under Receiver Operating Characteristic Curve", "ROC AUC", "AUC ROC", "roc-auc", "AUROC"),
    per_class=("auc_one_vs_rest", auc_per_class),
)
F1_MICRO = Metric(
    "f1-micro",
    f1_micro,
    higher_is_better=True,
    label="micro F1",
    # Kaggle's per-row "Mean F-Score" of a single label is 1 for a hit and 0 for a miss: micro F1 again
    aliases=("Micro F1", "F1 Micro", "Mean FScore Micro", "Mean F-Score Micro", "Mean F-Score", "Mean FScore"),
)
F1_MACRO = Metric(
    "f1-macro",
    f1_macro,
    higher_is_better=True,
    label="macro F1",
    aliases=("Macro F1", "F1 Macro", "Mean FScore Macro", "Mean F-Score Macro", "Macro F1 Score"),
    per_class=("f1", f1_per_class),
)
QWK = Metric(
    "qwk",
    qwk,
    higher_is_better=True,
    label="quadratic weighted kappa",
    aliases=("Quadratic Weighted Kappa", "Quadratic Kappa", "kappa"),
    fits_thresholds=True,
    per_class=("recall", recall_per_class),  # kappa of one true grade alone is always 0
    ordinal=True,
)
METRICS = {m.name: m for m in (ACCURACY, LOG_LOSS, AUC, F1_MICRO, F1_MACRO, QWK)}


def are_grades(classes) -> bool:
    """Class names that are all integers: grades, ordered by value (as `labels` orders them, 10 after 9)."""
    return bool(classes) and all(str(name).lstrip("-").isdigit() for name in classes)


def _plain(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.lower())


def metric_by_name(text: str) -> Metric:
    """Our name (`logloss`, `f1-macro`), a stored one (`log_loss`) or Kaggle's evaluation-metric name, with case,
    spaces, hyphens and underscores ignored; anything else is a one-line error with the nearest names."""
    names = {_plain(n): m for m in METRICS.values() for n in (m.name, m.key, m.label, *m.aliases)}
    if _plain(text) in names:
        return names[_plain(text)]
    close = difflib.get_close_matches(_plain(text), list(names), n=1, cutoff=0.6)
    hint = f" (did you mean {names[close[0]].key}?)" if close else ""
    ours = ", ".join(m.key for m in METRICS.values())
    raise KitError(f"unknown metric '{text}'{hint}: use one of {ours}, or Kaggle's evaluation metric name")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


TEMPERATURE_RANGE = (0.05, 20.0)  # what fit_temperature searches


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising log loss of softmax(logits / T), searched on a log grid then refined."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 1.0

    def loss(t: float) -> float:
        return log_loss(labels, softmax(logits, t))

    grid = np.exp(np.linspace(np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1]), 61))
    losses = [loss(t) for t in grid]
    i = int(np.argmin(losses))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    # golden-section search on the bracket around the best grid point
    g = (np.sqrt(5) - 1) / 2
    a, b = np.log(lo), np.log(hi)
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(40):
        if loss(np.exp(c)) < loss(np.exp(d)):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(np.exp((a + b) / 2))


def calibrating_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float, str | None]:
    """(temperature, note): the temperature a run's predict or a fold group's blend applies, fitted on held-out
    logits; 1.0 where the fit does not beat leaving the logits alone, or where it ran into the search's floor.

    At the floor the fit says nothing about calibration: on a split the model separates perfectly, log loss falls
    without end as T shrinks, so the search stops where its range does (T=0.05 multiplies the logits by 20), not
    where the data asks. No second held-out set is left to check a sharper temperature on, and near one-hot
    probabilities cost up to Kaggle's clip (34.5) for every test error the split did not show, so the model's
    own scale stays. The ceiling is left as fitted: flatter probabilities are the cautious side, each loss
    staying near log(classes)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    fitted = fit_temperature(logits, labels)
    loss = log_loss(labels, softmax(logits, fitted))
    if loss > log_loss(labels, softmax(logits, 1.0)):
        return 1.0, None
    # the floor is no worse than the fit: the loss still falls towards it, or has flattened at Kaggle's clip (every
    # probability 1 - 1e-15), where the search stops anywhere on the plateau
    if log_loss(labels, softmax(logits, TEMPERATURE_RANGE[0])) > loss + 1e-12:
        return fitted, None
    n = len(labels)
    if (logits.argmax(axis=1) == labels).all():
        return 1.0, f"validation split perfectly separated ({n} images): temperature left at 1.0"
    return 1.0, f"temperature fit ran into its floor {TEMPERATURE_RANGE[0]} on {n} held-out images: left at 1.0"
