"""Intervals and cross-fitted post-hoc fits on fixed arrays: the interval holds a hidden score as often as it
says, whole groups are drawn together, a fit scored where it was fitted is never the printed figure, and a fit
that does not beat its default's cross-fitted score is not used."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.metrics import log_loss as sk_log_loss

from kaggle_kit.competitions.bootstrap import (
    bootstrap_interval,
    paired_difference,
    resample_counts,
    temperature_warning,
)
from kaggle_kit.competitions.metrics import ACCURACY, LOG_LOSS, QWK, one_hot_grades, softmax
from kaggle_kit.competitions.posthoc import GradeThresholdFit, TemperatureFit, cross_fit, fold_of_rows


def _graded(rng, n, classes=5, signal=1.0, scale=1.0):
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits -= signal * np.abs(np.subtract.outer(labels, np.arange(classes)))  # near grades likelier
    return labels, logits * scale


def test_the_metrics_agree_with_scikit_learn():
    labels, logits = _graded(np.random.default_rng(0), 200)
    probs = softmax(logits)
    assert QWK(labels, probs) == pytest.approx(cohen_kappa_score(labels, probs.argmax(1), weights="quadratic"))
    assert LOG_LOSS(labels, probs) == pytest.approx(sk_log_loss(labels, probs, labels=range(5)))
    assert ACCURACY(labels, probs) == pytest.approx(accuracy_score(labels, probs.argmax(1)))


def test_interval_prints_n_and_the_vectorised_path_matches_the_loop():
    labels, logits = _graded(np.random.default_rng(1), 43)
    probs = softmax(logits)
    for metric in (ACCURACY, LOG_LOSS):
        fast = bootstrap_interval(metric, labels, probs)
        slow = bootstrap_interval(lambda y, p, m=metric: m(y, p), labels, probs)  # a plain callable: one by one
        assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high))
        assert fast.low < fast.value < fast.high and fast.n == 43
    shown = str(bootstrap_interval(QWK, labels, probs))
    assert shown.endswith("n=43") and "[" in shown
    assert bootstrap_interval(QWK, labels, probs) == bootstrap_interval(QWK, labels, probs)  # seeded


def test_interval_holds_the_hidden_score_about_as_often_as_it_says():
    rng = np.random.default_rng(2)
    held = 0
    for _ in range(200):
        labels, logits = _graded(rng, 2043)
        probs = softmax(logits)
        interval = bootstrap_interval(ACCURACY, labels[:43], probs[:43], resamples=400, seed=int(rng.integers(1e6)))
        held += interval.holds(ACCURACY(labels[43:], probs[43:]))
    assert 0.88 <= held / 200 <= 0.99  # 95% nominal; 43 rows make the percentile bootstrap a little narrow


def test_whole_groups_are_drawn_together_and_widen_the_interval():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(10), 6)
    counts = resample_counts(60, groups, 50)
    assert (counts.reshape(50, 10, 6) == counts.reshape(50, 10, 6)[:, :, :1]).all()  # a group's rows move as one
    assert (counts.sum(axis=1) == 60).all()
    correct = np.repeat(rng.random(10) < 0.6, 6)  # each group all right or all wrong: 10 observations, not 60
    labels = np.zeros(60, dtype=np.int64)
    probs = np.where(correct[:, None], [[0.9, 0.1]], [[0.1, 0.9]])
    by_row, by_group = bootstrap_interval(ACCURACY, labels, probs), bootstrap_interval(ACCURACY, labels, probs, groups)
    assert by_group.high - by_group.low > 1.8 * (by_row.high - by_row.low)
    assert str(by_group).endswith("n=60 (10 groups)")


def test_cross_fit_parts_keep_groups_together():
    labels = np.tile(np.arange(5), 20)
    groups = np.repeat(np.arange(25), 4)
    part = fold_of_rows(labels, groups)
    assert all(len(set(part[groups == g])) == 1 for g in range(25)) and len(set(part)) == 5


def test_thresholds_fitted_on_noise_score_near_nothing_where_they_were_not_fitted():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, 43)
    probs = rng.dirichlet(np.ones(5), 43)  # no relation to the labels
    fit = GradeThresholdFit(QWK)
    in_sample = QWK(labels, one_hot_grades(probs, fit.fit(labels, probs)))
    crossed = cross_fit(fit, labels, probs)
    assert in_sample > 0.2  # fitted and scored on the same rows, noise looks like skill
    assert crossed.fitted_score < in_sample - 0.1 and crossed.interval.low < 0 < crossed.interval.high
    assert crossed.interval.value == pytest.approx(crossed.score)


def test_a_fit_that_does_not_beat_its_default_where_it_was_not_fitted_is_not_used():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 5, 43)
    logits = rng.normal(size=(43, 5))  # T = 1 is right: the labels are drawn from softmax(logits)
    labels = np.array([rng.choice(5, p=row) for row in softmax(logits)])
    crossed = cross_fit(TemperatureFit(), labels, logits)
    assert TemperatureFit().fit(labels, logits) != 1.0  # on all rows some other T always looks a little better
    assert not crossed.used and crossed.params == 1.0 and crossed.fitted_score > crossed.default_score
    assert "temperature not used: cross-fitted log loss" in crossed.note and "(T=1.000)" in crossed.note
    np.testing.assert_allclose(crossed.submitted, softmax(logits))


def test_thresholds_that_help_on_unseen_parts_are_used_and_refitted_on_all():
    rng = np.random.default_rng(5)
    labels, logits = _graded(rng, 400, signal=1.5)
    probs = softmax(logits)
    crossed = cross_fit(GradeThresholdFit(QWK), labels, probs)
    assert crossed.used and crossed.score > QWK(labels, probs)
    assert crossed.params == pytest.approx(GradeThresholdFit(QWK).fit(labels, probs))  # the refit on every row
    assert crossed.interval.value == pytest.approx(crossed.fitted_score)


def test_an_overconfident_model_gets_its_temperature_and_a_warning():
    labels, logits = _graded(np.random.default_rng(6), 300, scale=6.0)
    crossed = cross_fit(TemperatureFit(), labels, logits)
    assert crossed.used and crossed.params > 3 and crossed.fitted_score < LOG_LOSS(labels, softmax(logits))
    assert "outside [0.3, 3.0]" in temperature_warning(crossed.params, 300)
    assert temperature_warning(1.2) is None and "sharpened" in temperature_warning(0.2)


def test_a_difference_is_a_win_only_beyond_noise():
    rng = np.random.default_rng(7)
    labels, logits = _graded(rng, 43)
    probs = softmax(logits)
    nudged = probs.copy()
    wrong = np.flatnonzero(probs.argmax(1) != labels)[:1]
    nudged[wrong, labels[wrong]] = 2  # one more image right
    one_image = paired_difference(ACCURACY, labels, nudged, probs)
    assert one_image.interval.value == pytest.approx(1 / 43) and not one_image.a_wins
    assert "within noise" in one_image.describe()
    perfect = np.eye(5)[labels]
    big = paired_difference(ACCURACY, labels, perfect, probs)
    assert big.a_wins and "a win" in big.describe()
    assert paired_difference(LOG_LOSS, labels, perfect, probs).a_wins  # lower is better: the sign is read right


def test_the_cross_fitted_qwk_interval_holds_the_hidden_score_where_the_in_sample_figure_overshoots():
    """APTOS in numbers: 43 validation images of a mediocre grader, cut points fitted on them, and the hidden
    test (2000 images of the same kind) scored with the cut points refitted on all 43."""
    rng = np.random.default_rng(9)
    held, held_in_sample, overshoot = 0, 0, []
    for _ in range(25):
        labels, logits = _graded(rng, 2043, signal=0.5)
        probs = softmax(logits)
        val, test = slice(0, 43), slice(43, None)
        fit = GradeThresholdFit(QWK)
        crossed = cross_fit(fit, labels[val], probs[val])
        hidden = QWK(labels[test], fit.apply(crossed.params, probs[test]))
        held += crossed.interval.holds(hidden)
        in_sample = one_hot_grades(probs[val], fit.fit(labels[val], probs[val]))
        held_in_sample += bootstrap_interval(QWK, labels[val], in_sample).holds(hidden)
        overshoot.append(QWK(labels[val], in_sample) - hidden)
    assert held / 25 >= 0.8 and held > held_in_sample  # 95% nominal: the rows are resampled, the fit is not
    assert np.mean(overshoot) > 0.05  # the old printed figure: fitted and scored on the same 43 images
