"""Does a printed 95% interval hold the figure it claims to, as often as 95%? Few groups, few images (issue 27).

    .venv/bin/python benchmarks/bench_coverage.py [--draws 400] [--quick] [--json FILE]

Two shapes, both drawn many times with known truth; each draw's interval is the kit's (`bootstrap_interval`: whole
groups resampled where declared) and, on the same 1000 resamples, the plain percentile interval (2.5% and 97.5%)
that the kit printed before. Coverage is the share of draws whose interval holds the truth.

- State Farm (tests/data/test_grouped_interval.py's world): 26 drivers of 40 frames, 10 classes; `stratified_split`
  holds out 20% of the drivers (5-6 groups) and the model is right on a new driver's frame with that driver's own
  rate, uniform in 0.45-0.75. Truth: the expected accuracy on a new driver (0.60); beside it, the score on a hidden
  test set of 13 new drivers (which has noise of its own, so no interval of the validation figure alone holds it
  95% of the time).
- 43 images, no groups (APTOS's validation split): each right with probability 0.6. Truth: 0.60.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import print_machine, table, write_json  # noqa: E402

from kaggle_kit.competitions.bootstrap import bootstrap_interval, resample_counts, resampled_scores  # noqa: E402
from kaggle_kit.competitions.metrics import ACCURACY  # noqa: E402
from kaggle_kit.data.split import stratified_split  # noqa: E402

DRIVERS, TEST_DRIVERS, FRAMES, CLASSES, TRUTH = 26, 13, 40, 10, 0.60


def predicted(rng, labels, right_rate):
    """Probabilities whose argmax is right on each row with its probability."""
    right = rng.random(len(labels)) < right_rate
    chosen = np.where(right, labels, (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES)
    probs = np.full((len(labels), CLASSES), 0.1 / (CLASSES - 1))
    probs[np.arange(len(labels)), chosen] = 0.9
    return probs


def state_farm(seed: int):
    """(labels, probabilities, groups) of the validation drivers, and the hidden test score."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, DRIVERS * FRAMES)
    groups = np.repeat([f"p{d:03d}" for d in range(DRIVERS)], FRAMES)
    unseen = rng.uniform(0.45, 0.75, DRIVERS)
    _, val = stratified_split(labels, 0.2, seed, groups)
    driver = np.array([int(g[1:]) for g in groups[val]])
    probs = predicted(rng, labels[val], unseen[driver])
    test_labels = rng.integers(0, CLASSES, TEST_DRIVERS * FRAMES)
    hidden = ACCURACY(
        test_labels, predicted(rng, test_labels, np.repeat(rng.uniform(0.45, 0.75, TEST_DRIVERS), FRAMES))
    )
    return labels[val], probs, groups[val], hidden


def few_images(seed: int, n: int = 43):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    return labels, predicted(rng, labels, np.full(n, TRUTH)), None, None


def both_intervals(labels, probs, groups):
    """The kit's interval and the plain 2.5%-97.5% percentile interval, on the same resamples."""
    kit = bootstrap_interval(ACCURACY, labels, probs, groups)
    scores = resampled_scores(ACCURACY, labels, probs, resample_counts(len(labels), groups))
    plain = np.percentile(scores, [2.5, 97.5])
    return (kit.low, kit.high), (float(plain[0]), float(plain[1])), kit.groups or kit.n


def measure(shape: str, draw, draws: int) -> list[dict]:
    found = {"plain percentile (before)": [], "small-sample scaled (kit)": []}
    hidden_held = {name: 0 for name in found}
    units = []
    for seed in range(draws):
        labels, probs, groups, hidden = draw(seed)
        kit, plain, count = both_intervals(labels, probs, groups)
        units.append(count)
        for name, (low, high) in zip(found, (plain, kit)):
            found[name].append((low, high))
            hidden_held[name] += hidden is not None and low <= hidden <= high
    rows = []
    for name, intervals in found.items():
        lows, highs = np.array(intervals).T
        rows.append(
            {
                "shape": shape,
                "interval": name,
                "units": f"{np.mean(units):.1f}",
                "holds truth": f"{np.mean((lows <= TRUTH) & (TRUTH <= highs)):.1%}",
                "holds hidden": f"{hidden_held[name] / draws:.1%}" if draw is state_farm else "-",
                "width": f"{np.mean(highs - lows):.3f}",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="10 draws of each shape (seconds)")
    parser.add_argument("--json")
    args = parser.parse_args()
    draws = 10 if args.quick else args.draws
    machine = print_machine("bootstrap interval coverage")
    rows = measure("State Farm, 5-6 drivers", state_farm, draws) + measure("43 images, no groups", few_images, draws)
    columns = ["shape", "interval", "units", "holds truth", "holds hidden", "width"]
    print(f"{draws} draws of each shape, 95% nominal")
    print(table(rows, columns))
    write_json(args.json, {"machine": machine, "draws": draws, "rows": rows})


if __name__ == "__main__":
    main()
