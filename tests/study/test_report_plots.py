"""The experiment report's pictures when no run has finished yet (every cell interrupted, the first seconds)."""

import warnings

from kaggle_kit.competitions.metrics import ACCURACY
from kaggle_kit.study.plan import parse_plan
from kaggle_kit.study.report_plots import table_png

PLAN = """
competition = "cifar10"
recipe = "paper"
[grid]
schedule = ["constant", "cosine"]
"""


def test_the_results_picture_of_an_experiment_with_no_finished_run_warns_nothing():
    """An experiment stopped before its first run finished still gets its picture, with no legend to draw:
    matplotlib's 'No artists with labels found' warning used to reach the user's terminal."""
    plan = parse_plan(PLAN, "cells")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = table_png(plan, {}, {}, {}, ACCURACY, None)
    assert png.startswith(b"\x89PNG")
