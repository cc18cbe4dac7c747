"""Metrics against hand-computed values, Kaggle's log-loss treatment, directions, temperature fitting."""

import math

import numpy as np
import pytest

from kaggle_kit.competitions.metrics import (
    ACCURACY,
    AUC,
    F1_MACRO,
    F1_MICRO,
    KAGGLE_EPS,
    LOG_LOSS,
    METRICS,
    QWK,
    accuracy,
    binary_log_loss,
    calibrating_temperature,
    fit_qwk_thresholds,
    fit_temperature,
    grades_from_thresholds,
    kaggle_clip,
    log_loss,
    metric_by_name,
    softmax,
)
from kaggle_kit.core.errors import KitError


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


def test_a_perfectly_separated_split_leaves_the_temperature_at_one():
    """Five images, each on its right class: log loss falls as T shrinks, so the fit runs into the 0.05 floor, where
    one unseen error would cost about Kaggle's clip. The calibrating temperature stays 1.0 and says why."""
    logits = np.array([[3.0, 0, 0], [0, 2.5, 0], [0, 0, 4.0], [1.0, 2.0, 0], [0.5, 0, 2.0]])
    labels = np.array([0, 1, 2, 1, 2])
    assert fit_temperature(logits, labels) == pytest.approx(0.05, rel=0.01)
    unseen_error = np.array([[0.0, 3.0, 0]]), np.array([0])
    assert log_loss(unseen_error[1], softmax(unseen_error[0], 0.05)) > 30  # what the floor would have cost
    assert calibrating_temperature(logits, labels) == (
        1.0,
        "validation split perfectly separated (5 images): temperature left at 1.0",
    )
    # margins so wide that a small T rounds every probability to Kaggle's clip: the loss flattens before the floor
    assert calibrating_temperature(logits * 4, labels)[0] == 1.0
    # one error with a small margin: an interior optimum, fitted and kept as before, no note
    mixed = np.vstack([logits, [[0.2, 0.0, 0]]])
    mixed_labels = np.append(labels, 1)
    fitted = fit_temperature(mixed, mixed_labels)
    assert 0.06 < fitted and calibrating_temperature(mixed, mixed_labels) == (fitted, None)
    assert log_loss(mixed_labels, softmax(mixed, fitted)) < log_loss(mixed_labels, softmax(mixed))


def test_empty_inputs():
    empty = np.zeros((0, 3))
    assert math.isnan(accuracy(np.zeros(0, dtype=np.int64), empty))
    assert math.isnan(log_loss(np.zeros(0, dtype=np.int64), empty))
    assert fit_temperature(empty, np.zeros(0, dtype=np.int64)) == 1.0


# --------------------------------------------------------------------------- every metric against scikit-learn

sk = pytest.importorskip("sklearn.metrics")


def random_case(seed: int, n: int = 200, classes: int = 5, missing: int | None = None):
    """Random labels and probabilities; `missing` is a class no label takes (its column still predicted)."""
    rng = np.random.default_rng(seed)
    choices = [k for k in range(classes) if k != missing]
    labels = rng.choice(choices, size=n)
    probs = rng.dirichlet(np.full(classes, 0.7), size=n)
    return labels, probs


CASES = [random_case(0), random_case(1, classes=3), random_case(2, missing=2), random_case(3, n=17, classes=7)]


@pytest.mark.parametrize("labels,probs", CASES)
def test_accuracy_and_f1_match_scikit_learn(labels, probs):
    predicted = probs.argmax(axis=1)
    assert ACCURACY(labels, probs) == pytest.approx(sk.accuracy_score(labels, predicted), abs=1e-12)
    assert F1_MICRO(labels, probs) == pytest.approx(sk.f1_score(labels, predicted, average="micro"), abs=1e-12)
    assert F1_MACRO(labels, probs) == pytest.approx(sk.f1_score(labels, predicted, average="macro"), abs=1e-12)


@pytest.mark.parametrize("labels,probs", CASES)
def test_log_loss_matches_scikit_learn_on_kaggle_clipped_probabilities(labels, probs):
    extreme = probs.copy()
    extreme[:5] = np.eye(probs.shape[1])[(labels[:5] + 1) % probs.shape[1]]  # certain and wrong: only the clip saves it
    expected = sk.log_loss(labels, kaggle_clip(extreme), labels=range(probs.shape[1]))
    assert LOG_LOSS(labels, extreme) == pytest.approx(expected, rel=1e-9)
    assert LOG_LOSS(labels, extreme) > 5 / len(labels) * -math.log(KAGGLE_EPS)  # finite, and the 5 rows dominate


def test_binary_log_loss_clips_one_column_and_equals_the_two_column_form():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 100)
    positive = rng.random(100)
    positive[:3] = 1 - labels[:3]  # certain and wrong
    positive[3:6] = labels[3:6]  # certain and right
    expected = sk.log_loss(labels, np.clip(positive, KAGGLE_EPS, 1 - KAGGLE_EPS))
    assert binary_log_loss(labels, positive) == pytest.approx(expected, rel=1e-9)
    assert LOG_LOSS(labels, np.column_stack([1 - positive, positive])) == pytest.approx(expected, rel=1e-9)


def test_auc_matches_scikit_learn_binary_with_ties_and_one_vs_rest_macro():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 150)
    positive = rng.integers(0, 5, 150) / 4  # five distinct values: many ties
    two = np.column_stack([1 - positive, positive])
    assert AUC(labels, two) == pytest.approx(sk.roc_auc_score(labels, positive), abs=1e-12)
    # which column is "positive" does not matter: the other column ranks the rows in reverse
    assert AUC(1 - labels, two[:, ::-1]) == pytest.approx(AUC(labels, two), abs=1e-12)
    labels, probs = CASES[0]
    expected = sk.roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert AUC(labels, probs) == pytest.approx(expected, abs=1e-12)
    labels, probs = CASES[2]  # class 2 never occurs: averaged over the classes that do
    present = [sk.roc_auc_score(labels == k, probs[:, k]) for k in (0, 1, 3, 4)]
    assert AUC(labels, probs) == pytest.approx(np.mean(present), abs=1e-12)
    assert math.isnan(AUC(np.zeros(4, int), np.full((4, 2), 0.5)))  # one class only: no curve


@pytest.mark.parametrize("labels,probs", CASES)
def test_qwk_matches_cohen_kappa_quadratic(labels, probs):
    classes = range(probs.shape[1])
    expected = sk.cohen_kappa_score(labels, probs.argmax(axis=1), weights="quadratic", labels=classes)
    assert QWK(labels, probs) == pytest.approx(expected, abs=1e-12)


def test_qwk_thresholds_on_the_expected_grade_beat_argmax_on_their_fit():
    rng = np.random.default_rng(6)
    grades = rng.integers(0, 5, 400)
    # probabilities spread around the true grade, too flat for argmax to read it well
    logits = -((np.arange(5)[None, :] - grades[:, None] - rng.normal(0, 0.8, (400, 1))) ** 2) / 6
    probs = softmax(logits)
    thresholds = fit_qwk_thresholds(grades, probs)
    assert thresholds == sorted(thresholds) and len(thresholds) == 4
    fitted = grades_from_thresholds(probs, thresholds)
    by_thresholds = sk.cohen_kappa_score(grades, fitted, weights="quadratic")
    halfway = sk.cohen_kappa_score(grades, grades_from_thresholds(probs, [0.5, 1.5, 2.5, 3.5]), weights="quadratic")
    assert by_thresholds >= halfway and by_thresholds > QWK(grades, probs)


def test_metric_by_name_takes_ours_stored_and_kaggle_names():
    assert metric_by_name("logloss") is LOG_LOSS and metric_by_name("log_loss") is LOG_LOSS
    assert metric_by_name("Multi Class Log Loss") is LOG_LOSS and metric_by_name("log loss") is LOG_LOSS
    assert metric_by_name("Categorization Accuracy") is ACCURACY
    assert metric_by_name("Area Under Receiver Operating Characteristic Curve") is AUC
    assert metric_by_name("F1_MACRO") is F1_MACRO and metric_by_name("Micro F1") is F1_MICRO
    assert metric_by_name("Quadratic Weighted Kappa") is QWK
    assert [m.key for m in METRICS.values()] == ["accuracy", "logloss", "auc", "f1-micro", "f1-macro", "qwk"]
    assert [m.higher_is_better for m in METRICS.values()] == [True, False, True, True, True, True]
    with pytest.raises(KitError, match=r"unknown metric 'qwkk' \(did you mean qwk\?\): use one of accuracy, logloss"):
        metric_by_name("qwkk")


def test_per_class_scores_of_metrics_that_are_no_mean_over_rows():
    labels, probs = CASES[2]  # class 2 never occurs
    predicted, classes = probs.argmax(axis=1), range(probs.shape[1])
    f1 = sk.f1_score(labels, predicted, average=None, labels=classes, zero_division=0)
    name, per_class = F1_MACRO.per_class
    scores = per_class(labels, probs)
    assert name == "f1" and np.allclose(scores[~np.isnan(scores)], f1[~np.isnan(scores)])
    assert np.isnan(scores[2]) == (not (predicted == 2).any())
    auc = AUC.per_class[1](labels, probs)
    assert np.isnan(auc[2]) and np.allclose(
        auc[[0, 1, 3, 4]], [sk.roc_auc_score(labels == k, probs[:, k]) for k in (0, 1, 3, 4)]
    )
    recall = QWK.per_class[1](labels, probs)
    expected = sk.recall_score(labels, predicted, average=None, labels=[0, 1, 3, 4], zero_division=0)
    assert np.isnan(recall[2]) and np.allclose(recall[[0, 1, 3, 4]], expected)
    assert ACCURACY.per_class is None and LOG_LOSS.per_class is None  # the metric on each class's images
