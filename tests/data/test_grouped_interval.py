"""State Farm in numbers: why a group column matters to the printed figure.

26 drivers, 10 classes, 40 frames each; the hidden test set holds 13 new drivers. A model recognises frames of a
driver it trained on (near-duplicates: right 97% of the time) and does only as well on a new driver as that
driver's own difficulty allows (45-75% right). The split and the interval are the real ones (`stratified_split`,
`bootstrap_interval`): with the group column, whole drivers are held out and resampled, and the printed interval
holds the hidden score; without it, validation frames come from training drivers, and the interval misses it.
The generated State Farm download cannot show this end to end: its drivers are labels without a look of their
own (tests/workflows/test_any_competition.py checks the grouped split on it by construction).
"""

import numpy as np

from kaggle_kit.competitions.bootstrap import bootstrap_interval
from kaggle_kit.competitions.metrics import ACCURACY
from kaggle_kit.data.split import stratified_split

DRIVERS, TEST_DRIVERS, FRAMES, CLASSES = 26, 13, 40, 10


def _frames(rng, drivers: int):
    """(labels, driver of each frame, each driver's accuracy on frames of a driver never trained on)."""
    labels = rng.integers(0, CLASSES, drivers * FRAMES)
    groups = np.repeat([f"p{d:03d}" for d in range(drivers)], FRAMES)
    return labels, groups, rng.uniform(0.45, 0.75, drivers)


def _predicted(rng, labels, right_rate):
    """One-hot-ish probabilities, right on each frame with its probability."""
    right = rng.random(len(labels)) < right_rate
    chosen = np.where(right, labels, (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES)
    probs = np.full((len(labels), CLASSES), 0.1 / (CLASSES - 1))
    probs[np.arange(len(labels)), chosen] = 0.9
    return probs


def _run(seed: int, grouped: bool):
    rng = np.random.default_rng(seed)
    labels, groups, unseen = _frames(rng, DRIVERS)
    train_idx, val_idx = stratified_split(labels, 0.2, seed, groups if grouped else None)
    trained = set(groups[train_idx])
    driver = np.array([int(g[1:]) for g in groups[val_idx]])
    right_rate = np.where([g in trained for g in groups[val_idx]], 0.97, unseen[driver])
    probs = _predicted(rng, labels[val_idx], right_rate)
    interval = bootstrap_interval(ACCURACY, labels[val_idx], probs, groups[val_idx] if grouped else None)
    test_labels, _, test_unseen = _frames(rng, TEST_DRIVERS)
    hidden = ACCURACY(test_labels, _predicted(rng, test_labels, np.repeat(test_unseen, FRAMES)))
    return interval, hidden


def test_the_grouped_interval_holds_the_hidden_score_and_the_ungrouped_one_misses_it():
    grouped = [_run(seed, grouped=True) for seed in range(12)]
    loose = [_run(seed, grouped=False) for seed in range(12)]
    assert all(interval.groups is not None and interval.groups >= 4 for interval, _ in grouped)
    # 95% nominal over 5-6 drivers: the plain percentile bootstrap held in 15 of 20 seeded draws, the interval
    # widened for few groups (bootstrap.small_sample_factor) in 18 of 20, 10 of these 12 (benchmarks/bench_coverage)
    assert sum(interval.holds(hidden) for interval, hidden in grouped) >= 10
    assert not any(interval.holds(hidden) for interval, hidden in loose)
    assert all(interval.low > hidden + 0.1 for interval, hidden in loose)  # far too hopeful, not merely off
