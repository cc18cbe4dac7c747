"""Figures over a cell's seeds: mean and sample standard deviation, the best cell by the metric's direction (or a
tie), and whether the spread between cells is within the noise between seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..competitions.metrics import Metric


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None with one value: a single seed says nothing about seed noise
    n: int

    def text(self, digits: int = 4, planned: int | None = None) -> str:
        """`mean ± std`; with `planned` seeds and fewer values, how many the mean is of (a one-seed cell ranked
        beside full ones must show it)."""
        shown = f"{self.mean:.{digits}f}" if self.std is None else f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return shown + (f" ({self.n} of {planned} seeds)" if planned and self.n < planned else "")


def stat(values: Iterable[float | None]) -> Stat | None:
    """Mean and sample standard deviation (ddof=1) of the values that are numbers; None when there are none."""
    numbers = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not numbers:
        return None
    mean = sum(numbers) / len(numbers)
    std = math.sqrt(sum((v - mean) ** 2 for v in numbers) / (len(numbers) - 1)) if len(numbers) > 1 else None
    return Stat(mean, std, len(numbers))


def winner(values: Mapping[str, float | None], metric: Metric) -> str | None:
    """The key whose value is best in the metric's direction (higher accuracy, LOWER log loss); None when there
    is no number, or when two or more share the best value (a tie has no winner to mark)."""
    leaders = _leaders(values, metric)
    return leaders[0] if len(leaders) == 1 else None


def tied(values: Mapping[str, float | None], metric: Metric) -> list[str]:
    """The keys sharing the best value when more than one does; empty otherwise."""
    leaders = _leaders(values, metric)
    return leaders if len(leaders) > 1 else []


def _leaders(values: Mapping[str, float | None], metric: Metric) -> list[str]:
    best = metric.best(list(values.values()))
    return [key for key, value in values.items() if best is not None and value == best]


def seed_noise_note(stats: Mapping[str, Stat | None], metric: Metric) -> str | None:
    """Whether the best cell's lead over the runner-up is larger than the seed-to-seed spread of the two."""
    means = {k: s.mean for k, s in stats.items() if s is not None}
    first = winner(means, metric)
    if first is None or len(means) < 2:
        return None
    rest = {k: v for k, v in means.items() if k != first}
    second = winner(rest, metric)
    spread = [s.std for k, s in stats.items() if k in (first, second) and s is not None and s.std is not None]
    if not spread:
        return None
    margin, noise = abs(means[first] - means[second]), max(spread)
    verdict = "larger than" if margin > noise else "within"
    return (
        f"{first} leads {second} by {margin:.4f}, {verdict} the seed-to-seed standard deviation "
        f"({noise:.4f}){'' if margin > noise else ': more seeds are needed to rank these two'}"
    )


# --------------------------------------------------------------------------------------- one run


# --------------------------------------------------------------------------------------- the experiment
