"""Metrics against hand-computed values, Kaggle's log-loss treatment, directions, temperature fitting."""

import math

import numpy as np
import pytest

from kaggle_kit.metrics import (
    ACCURACY,
    KAGGLE_EPS,
    LOG_LOSS,
    METRICS,
    accuracy,
    fit_temperature,
    kaggle_clip,
    log_loss,
    softmax,
)


def test_accuracy_counts_argmax_matches():
    labels = np.array([0, 1, 2, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.0, 0.1, 0.9], [0.3, 0.6, 0.1]])
    assert accuracy(labels, probs) == 0.75
    assert ACCURACY(labels, probs) == 0.75


def test_log_loss_is_the_mean_negative_log_of_the_true_class():
    labels = np.array([0, 1])
    probs = np.array([[0.8, 0.2], [0.5, 0.5]])
    assert log_loss(labels, probs) == pytest.approx(-(math.log(0.8) + math.log(0.5)) / 2, abs=1e-12)


def test_a_confidently_wrong_row_costs_minus_ln_1e15():
    cost = -math.log(1e-15)
    assert cost == pytest.approx(34.538776, abs=1e-6)
    assert log_loss(np.array([1]), np.array([[1.0, 0.0, 0.0]])) == pytest.approx(cost, abs=1e-9)
    # one such row among 99 perfect ones still costs 0.345 on average: over-confidence dominates
    labels = np.zeros(100, dtype=np.int64)
    labels[0] = 1
    probs = np.tile([1.0, 0.0], (100, 1))
    assert log_loss(labels, probs) == pytest.approx(cost / 100, abs=1e-9)


def test_a_certain_right_row_is_clipped_below_one():
    assert log_loss(np.array([0]), np.array([[1.0, 0.0]])) == pytest.approx(-math.log(1 - KAGGLE_EPS), rel=1e-3)
    clipped = kaggle_clip(np.array([[1.0, 0.0]]))
    assert clipped.min() == KAGGLE_EPS and clipped.max() == 1 - KAGGLE_EPS


def test_rows_that_do_not_sum_to_one_are_rescaled_first():
    # [2, 1, 1] is [0.5, 0.25, 0.25] after rescaling
    assert log_loss(np.array([0]), np.array([[2.0, 1.0, 1.0]])) == pytest.approx(math.log(2), abs=1e-12)
    assert log_loss(np.array([1, 2]), np.array([[0.1, 0.1, 0.2], [3.0, 3.0, 6.0]])) == pytest.approx(
        -(math.log(0.25) + math.log(0.5)) / 2, abs=1e-12
    )


def test_a_uniform_guess_over_120_breeds_scores_ln_120():
    labels = np.arange(240) % 120
    probs = np.full((240, 120), 1 / 120)
    assert LOG_LOSS(labels, probs) == pytest.approx(math.log(120), abs=1e-12)
    assert math.log(120) == pytest.approx(4.7875, abs=1e-4)


def test_directions_and_descriptions():
    assert METRICS["accuracy"] is ACCURACY and METRICS["log_loss"] is LOG_LOSS
    assert ACCURACY.higher_is_better and not LOG_LOSS.higher_is_better
    assert LOG_LOSS.describe(0.41) == "log loss 0.4100 - lower is better"
    assert ACCURACY.describe(0.9415) == "accuracy 0.9415 - higher is better"


def test_better_and_best_follow_each_metric_direction():
    # the study's Dog Breed scores: ResNet-18 0.8018 beats ResNet-34 1.3327 because lower is better
    assert LOG_LOSS.better(0.8018, 1.3327) and not LOG_LOSS.better(1.3327, 0.8018)
    assert ACCURACY.better(0.8848, 0.8294) and not ACCURACY.better(0.8294, 0.8848)
    assert not ACCURACY.better(0.5, 0.5) and not LOG_LOSS.better(0.5, 0.5)
    for metric in (ACCURACY, LOG_LOSS):
        assert metric.better(0.3, None) and metric.better(0.3, float("nan"))
        assert not metric.better(float("nan"), None)
        assert metric.best([None, float("nan")]) is None
    assert LOG_LOSS.best([1.3327, 0.8018, float("nan"), None]) == 0.8018
    assert ACCURACY.best([0.8294, 0.8848, None]) == 0.8848
    assert ACCURACY.worst == -np.inf and LOG_LOSS.worst == np.inf


def _calibrated_logits(n: int = 2000, classes: int = 10, seed: int = 0):
    """Logits whose softmax is the true label distribution (labels drawn from it): calibrated at T=1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, size=(n, classes))
    probs = softmax(logits)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def test_fit_temperature_undoes_over_confidence():
    logits, labels = _calibrated_logits()
    over_confident = logits * 5
    before = log_loss(labels, softmax(over_confident))
    temperature = fit_temperature(over_confident, labels)
    after = log_loss(labels, softmax(over_confident, temperature))
    assert temperature > 1
    assert 3.5 < temperature < 7  # about 5: the factor the logits were inflated by
    assert after < before - 0.5
    assert after <= log_loss(labels, softmax(logits)) + 0.01


def test_fit_temperature_sharpens_an_under_confident_model():
    logits, labels = _calibrated_logits(seed=1)
    timid = logits / 3
    temperature = fit_temperature(timid, labels)
    assert temperature < 1
    assert log_loss(labels, softmax(timid, temperature)) < log_loss(labels, softmax(timid))


def test_empty_inputs():
    empty = np.zeros((0, 3))
    assert math.isnan(accuracy(np.zeros(0, dtype=np.int64), empty))
    assert math.isnan(log_loss(np.zeros(0, dtype=np.int64), empty))
    assert fit_temperature(empty, np.zeros(0, dtype=np.int64)) == 1.0
