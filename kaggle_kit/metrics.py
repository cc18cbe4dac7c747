"""Competition metrics with their direction, Kaggle's log-loss clipping, and temperature fitting.

Inputs are plain numpy: `labels` holds class indices (n,), `probs` holds probabilities (n, classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

KAGGLE_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    label: str  # in words, e.g. "log loss"

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


ACCURACY = Metric("accuracy", accuracy, higher_is_better=True, label="accuracy")
LOG_LOSS = Metric("log_loss", log_loss, higher_is_better=False, label="log loss")
METRICS = {m.name: m for m in (ACCURACY, LOG_LOSS)}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising log loss of softmax(logits / T), searched on a log grid then refined."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 1.0

    def loss(t: float) -> float:
        return log_loss(labels, softmax(logits, t))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
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
