"""How well local validation has predicted the public score, over a competition's scored submissions.

Rank correlation (Spearman's, ties averaged) of validation against public score says whether picking by
validation picks well; the runs whose public score is furthest from their validation are the ones to
distrust (leakage, a lucky split, a public test set unlike the training data). The final selection's two
candidates are the two best runs by local validation: Kaggle scores the final two on the private set, which
the validation split estimates without the public leaderboard's noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..competitions.metrics import Metric

MIN_PAIRS = 3  # fewer points say nothing about a ranking
FURTHEST_SHOWN = 3


@dataclass
class Scored:
    run: str
    local: float
    public: float | None


@dataclass
class Tracking:
    pairs: int
    rank_correlation: float | None
    furthest: list[Scored]
    candidates: list[Scored]


def track(scored: list[Scored], metric: Metric) -> Tracking:
    pairs = [s for s in scored if s.public is not None]
    return Tracking(len(pairs), _spearman(pairs), _furthest(pairs), _candidates(scored, metric))


def _spearman(pairs: list[Scored]) -> float | None:
    import pandas as pd

    if len(pairs) < MIN_PAIRS:
        return None
    local = pd.Series([p.local for p in pairs]).rank()
    public = pd.Series([p.public for p in pairs]).rank()
    if local.nunique() < 2 or public.nunique() < 2:
        return None  # a constant column has no ranking to agree with
    return float(np.corrcoef(local, public)[0, 1])


def _furthest(pairs: list[Scored]) -> list[Scored]:
    return sorted(pairs, key=lambda p: abs(p.public - p.local), reverse=True)[:FURTHEST_SHOWN]


def _candidates(scored: list[Scored], metric: Metric) -> list[Scored]:
    """The two best distinct runs by local validation (each run's best submission)."""
    best: dict[str, Scored] = {}
    for item in scored:
        if item.run not in best or metric.better(item.local, best[item.run].local):
            best[item.run] = item
    ranked = sorted(best.values(), key=lambda s: s.local, reverse=metric.higher_is_better)
    return ranked[:2]
