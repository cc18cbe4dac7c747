"""Target kinds and their metrics: each metric against scikit-learn on the same arrays, each kind's label reading,
fitting and bad rows."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, mean_squared_error, roc_auc_score

from kaggle_kit.competitions import declaration
from kaggle_kit.competitions.metrics import kappa
from kaggle_kit.competitions.target_metrics import (
    F1_SAMPLES,
    MAP_AT_K,
    MEAN_AUC,
    RMSE,
    grade_kappa,
    map_at_k,
    mean_column_auc,
    target_metric_by_name,
)
from kaggle_kit.competitions.targets import MultiLabel, Ordinal, Regression, cut, fit_cut_points, fit_threshold
from kaggle_kit.core.errors import KitError

rng = np.random.default_rng(0)
TRUTH = (rng.random((200, 4)) < 0.3).astype(int)
PROBS = np.clip(TRUTH * 0.4 + rng.random((200, 4)) * 0.6, 0, 1)


def test_mean_column_auc_is_sklearns_macro_auc():
    assert mean_column_auc(TRUTH, PROBS) == pytest.approx(roc_auc_score(TRUTH, PROBS, average="macro"))


@pytest.mark.parametrize("average", ["micro", "macro", "samples"])
def test_set_f1_is_sklearns(average):
    chosen = (PROBS > 0.5).astype(int)
    kind = MultiLabel(form="set")
    assert kind.metrics[f"f1-{average}"](TRUTH, chosen) == pytest.approx(
        f1_score(TRUTH, chosen, average=average, zero_division=0)
    )


def test_rmse_and_grade_kappa_are_sklearns():
    truth, values = rng.normal(50, 20, 300), rng.normal(50, 20, 300)
    assert RMSE(truth, values) == pytest.approx(np.sqrt(mean_squared_error(truth, values)))
    grades, guess = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    assert grade_kappa(grades, guess, 5) == pytest.approx(cohen_kappa_score(grades, guess, weights="quadratic"))
    # a grade absent from both arrays still weighs the distances across it (Kaggle's full range)
    truth, guess = np.array([0, 1, 3, 3, 1]), np.array([0, 3, 3, 1, 1])
    assert grade_kappa(truth, guess, 4) == pytest.approx(kappa(truth, guess, 4))
    assert grade_kappa(truth, guess, 4) != pytest.approx(cohen_kappa_score(truth, guess, weights="quadratic"))


def test_map_at_k_by_hand():
    truth = np.array([3, 1, 0, 2])
    ranked = np.array([[3, 0, 1], [0, 1, 1], [1, 2, 3], [2, 2, 2]])
    assert map_at_k(truth, ranked) == pytest.approx((1 + 1 / 2 + 0 + 1) / 4)


def test_metrics_found_by_kaggle_names():
    assert target_metric_by_name("Mean Columnwise ROC AUC") is MEAN_AUC
    assert target_metric_by_name("Mean F1 Score") is F1_SAMPLES
    assert target_metric_by_name("Root Mean Squared Error") is RMSE
    assert target_metric_by_name("MAP@5") is MAP_AT_K
    assert target_metric_by_name("log loss").name == "log_loss"
    with pytest.raises(KitError, match="for other targets"):
        target_metric_by_name("no such metric")


def test_threshold_fit_beats_or_ties_half():
    kind = MultiLabel(form="set")
    score = kind.metrics["f1-samples"]
    shifted = PROBS * 0.6  # a model whose probabilities run low: 0.5 chooses too few labels
    fitted = fit_threshold(TRUTH, shifted, score)
    assert fitted < 0.5
    assert kind.score(F1_SAMPLES, TRUTH, shifted, {"threshold": fitted}) > kind.score(
        F1_SAMPLES, TRUTH, shifted, {"threshold": 0.5}
    )


def test_cut_points_beat_plain_rounding():
    grades = rng.integers(0, 5, 400)
    values = grades * 0.7 + rng.normal(0, 0.3, 400)  # a regressor that squeezes the range
    points = fit_cut_points(grades, values, 5)
    assert grade_kappa(grades, cut(values, points), 5) > grade_kappa(grades, cut(values, np.arange(4) + 0.5), 5)


def test_label_reading_and_bad_rows():
    frame = pd.DataFrame({"id": ["a", "b"], "labels": ["scab rust", "healthy"]})
    kind = MultiLabel(form="set")
    classes = kind.label_names(frame, "labels")
    assert kind.read_labels(frame, "id", "labels", classes, "train.csv").tolist() == [[0, 1, 1], [1, 0, 0]]
    with pytest.raises(KitError, match="id b has label 'frog', not one of the 2 labels"):
        kind.read_labels(
            pd.DataFrame({"id": ["a", "b"], "labels": ["scab", "frog"]}), "id", "labels", ["rust", "scab"], "x"
        )
    columns = pd.DataFrame({"id": ["a", "b"], "x": ["1", "0"], "y": ["0", "2"]})
    with pytest.raises(KitError, match="id b has a label cell other than 0 or 1"):
        MultiLabel().read_labels(columns, "id", "", ["x", "y"], "train.csv")
    grades = pd.DataFrame({"id_code": ["a", "b"], "diagnosis": ["4", "7"]})
    with pytest.raises(KitError, match="id b has a grade outside 0..4 in column 'diagnosis'"):
        Ordinal(n_grades=5).read_labels(grades, "id_code", "diagnosis", [], "train.csv")
    with pytest.raises(KitError, match="outside the declared range 1..100"):
        Regression(value_range=(1, 100)).read_labels(
            pd.DataFrame({"Id": ["a"], "Pawpularity": ["101"]}), "Id", "Pawpularity", [], "train.csv"
        )


def test_declaration_takes_a_target_and_refuses_an_unfit_metric(tmp_path):
    base = tmp_path / "base.toml"
    text = """name = "paw"\nslug = "paw"\ntitle = "p"\naliases = []\nmetric = "{metric}"\ndefault_recipe = "r"
target = "{target}"\n[files]\nlabel_file = "train.csv"\nsample_file = "sample_submission.csv"\nimage_ext = ".jpg"
[labels]\nlabel_column = "Pawpularity"\nid_kind = "text"\nclass_source = "labels"\nvalue_range = [1, 100]
[submission]\nkind = "label"\n[augmentations.modern]\n[recipes.r]\naug = "modern"\n"""
    base.write_text(text.format(metric="Root Mean Squared Error", target="regression"))
    comp = declaration.load(base)
    assert (comp.target, comp.value_range, comp.metric.name) == ("regression", (1.0, 100.0), "rmse")
    assert declaration.from_tree(__import__("tomllib").loads(declaration.dump(comp)), base).target == "regression"
    base.write_text(text.format(metric="accuracy", target="regression"))
    with pytest.raises(KitError, match="metric accuracy does not score a regression target: use one of rmse"):
        declaration.load(base)


def test_top_k_ranks_inserts_the_new_class_and_refuses_a_large_k():
    from kaggle_kit.competitions.targets import TopK

    kind = TopK(k=3, new_class="new_whale")
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    assert kind.answer(probs, {"threshold": 0.5}).tolist() == [[0, 3, 1], [3, 0, 1]]
    truth = np.array([0, 3])  # the second image is a new whale
    fitted = kind.fit(truth, probs, MAP_AT_K)
    assert map_at_k(truth, kind.answer(probs, fitted)) == 1.0 > map_at_k(truth, kind.answer(probs, {}))
    frame = pd.DataFrame({"Image": ["a.jpg"], "Id": ["w_1"]})
    with pytest.raises(KitError, match="k = 5 is larger than the 3 classes"):
        TopK(k=5).read_labels(frame, "Image", "Id", ["w_1", "w_2", "w_3"], "train.csv")
    with pytest.raises(KitError, match="id a.jpg has label 'w_9', not one of the 4 classes"):
        kind.read_labels(frame.assign(Id="w_9"), "Image", "Id", ["w_1", "w_2", "w_3"], "train.csv")


def test_kind_fits_are_cross_fitted_and_kept_only_where_they_beat_the_default():
    """A fit that helps is used, refitted on all rows, with a cross-fitted figure below its in-sample one; a fit
    on noise keeps the default and says both figures."""
    from kaggle_kit.competitions.metrics import QWK
    from kaggle_kit.competitions.posthoc import cross_fit_answers, describe_answers_fit

    kind = Ordinal(n_grades=5)
    grades = rng.integers(0, 5, 300)
    squeezed = grades * 0.6 + rng.normal(0, 0.3, 300)  # plain rounding puts most images a grade too low
    record = cross_fit_answers(kind, QWK, grades, squeezed)
    in_sample = kind.score(QWK, grades, squeezed, kind.fit(grades, squeezed, QWK))
    assert record["used"] and record["fitted"]["cut_points"] == kind.fit(grades, squeezed, QWK)["cut_points"]
    assert record["metric_default"] < record["metric"] == record["metric_cross_fitted"] <= in_sample
    interval = record["interval"]
    assert interval["low"] < record["metric"] < interval["high"] and interval["n"] == 300
    line = describe_answers_fit(record, QWK, "validation")
    assert "cross-fitted over 5 parts" in line and "default plain rounding" in line

    centred = grades + rng.normal(0, 0.3, 300)  # already rounded right: cut points only fit noise
    record = cross_fit_answers(kind, QWK, grades, centred)
    assert not record["used"] and record["fitted"] == {} and record["metric"] == record["metric_default"]
    assert "grade cut points not used: cross-fitted" in describe_answers_fit(record, QWK, "validation")


def test_label_set_and_new_class_fits_are_cross_fitted():
    from kaggle_kit.competitions.posthoc import cross_fit_answers
    from kaggle_kit.competitions.targets import TopK

    low = PROBS * 0.6  # probabilities that run low: 0.5 chooses too few labels
    record = cross_fit_answers(MultiLabel(form="set"), F1_SAMPLES, TRUTH, low)
    assert record["used"] and len(record["fitted"]["thresholds"]) == 4 and record["fitted"]["threshold"] < 0.5
    assert record["metric"] > record["metric_default"]
    assert cross_fit_answers(MultiLabel(), MEAN_AUC, TRUTH, PROBS)["cross_fitted"] is False  # nothing to fit

    classes, n = 6, 300
    truth = rng.integers(0, classes + 1, n)  # index 6: the new class, never a model output
    probs = rng.dirichlet(np.ones(classes) * 0.3, n)
    known = truth < classes
    probs[known, truth[known]] += 1.5  # sure of the classes it knows, unsure of the new ones
    probs /= probs.sum(axis=1, keepdims=True)
    record = cross_fit_answers(TopK(k=5, new_class="new_whale"), MAP_AT_K, truth, probs)
    assert record["used"] and record["metric"] > record["metric_default"]
    assert "new_whale ranked last" in record["default"]


def test_ordinal_is_inferred_only_from_a_grade_named_contiguous_column():
    from kaggle_kit.workflows.init_targets import ordinal_reason

    grades = pd.Series([0, 1, 2, 3, 4, 2])
    assert "'diagnosis' is named as a grade" in ordinal_reason("diagnosis", grades)
    assert ordinal_reason("isup_grade", pd.Series([0, 1, 2, 5, 4, 3])) is not None
    assert ordinal_reason("label", grades) is None  # integer class ids
    assert ordinal_reason("class_id", grades) is None
    assert ordinal_reason("diagnosis", pd.Series([0, 1, 3, 4])) is None  # a gap: not every grade
    assert ordinal_reason("level", pd.Series([1, 2, 3])) is None  # grades start at 0
