"""Post-hoc fits on held-out predictions, scored apart from where they were fitted (cross-fitting).

A post-hoc fit (a temperature, QWK cut points, ensemble weights; per-label thresholds and a new-class threshold
are more of the same kind) learns a few numbers from held-out predictions. Scored on the very rows it was fitted
on, it flatters itself: QWK cut points fitted on 43 images printed 0.60 where the hidden answers gave 0.21. So
`cross_fit` splits the held-out rows into K parts (whole groups kept together where the rows have groups), fits
on K-1 parts and applies the fit to the part left out; the printed figure is the metric of those out-of-part
predictions, labelled cross-fitted. The fit a submission uses is then refitted on all rows, and only where its
cross-fitted score beats its safe default's (T = 1, argmax grades, equal weights); otherwise the default is
submitted, with a note giving both scores.

Each fit is one small object:
    label        what it is in words ("temperature")
    metric       the score it is judged by (a Metric, with its direction)
    default()    the safe parameters, needing no data
    fit(y, x)    parameters fitted on labels y and inputs x (rows first: x[rows] selects rows)
    apply(p, x)  the probabilities submitted with parameters p
    score(y, q)  the metric of submitted probabilities q
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .bootstrap import Interval, bootstrap_interval
from .metrics import LOG_LOSS, Metric, calibrating_temperature, fit_qwk_thresholds, one_hot_grades, softmax

FOLDS = 5
SEED = 0


class PostHocFit(Protocol):
    label: str
    metric: Metric

    def default(self) -> Any: ...

    def fit(self, labels: np.ndarray, inputs: np.ndarray) -> Any: ...

    def apply(self, params: Any, inputs: np.ndarray) -> np.ndarray: ...

    def score(self, labels: np.ndarray, submitted: np.ndarray) -> float: ...

    def describe(self, params: Any) -> str: ...


class _Scored:
    metric: Metric

    def score(self, labels: np.ndarray, submitted: np.ndarray) -> float:
        return float(self.metric(labels, submitted))


@dataclass
class TemperatureFit(_Scored):
    """softmax(logits / T), T minimising log loss; default T = 1. Judged by log loss: the one score a temperature
    is meant to move (an argmax metric stays where it was)."""

    label: str = "temperature"
    metric: Metric = LOG_LOSS

    def default(self) -> float:
        return 1.0

    def fit(self, labels: np.ndarray, logits: np.ndarray) -> float:
        return calibrating_temperature(logits, labels)[0]

    def apply(self, temperature: float, logits: np.ndarray) -> np.ndarray:
        return softmax(logits, temperature)

    def describe(self, temperature: float) -> str:
        return f"T={temperature:.3f}"


@dataclass
class GradeThresholdFit(_Scored):
    """Cut points on the expected grade that maximise QWK; default None: the argmax grade, what a label
    submission writes without them."""

    metric: Metric
    label: str = "grade thresholds"

    def default(self) -> None:
        return None

    def fit(self, labels: np.ndarray, probs: np.ndarray) -> list[float]:
        return fit_qwk_thresholds(labels, probs)

    def apply(self, thresholds: list[float] | None, probs: np.ndarray) -> np.ndarray:
        return probs if thresholds is None else one_hot_grades(probs, thresholds)

    def describe(self, thresholds: list[float] | None) -> str:
        return "argmax grades" if thresholds is None else "cut points " + ", ".join(f"{t:.3f}" for t in thresholds)


@dataclass
class AnswerFit(_Scored):
    """A target kind's post-hoc fit (a label set's threshold, a grade's cut points, the new-class threshold), as
    `cross_fit` takes it: inputs are the kind's held-out values, `apply` turns them into the answers the
    submission states (label-set indicators, grades, ranked class indices) and `metric` scores those answers.
    The kind (competitions/targets) fits and answers; this only adapts it, so every kind is cross-fitted alike."""

    kind: Any  # a targets.TargetKind: fit(truth, values, metric), answer(values, fitted), describe_fit(fitted)
    declared: Metric  # the competition's metric, which the kind's fit maximises
    metric: Metric = field(init=False)
    label: str = field(init=False)

    def __post_init__(self):
        self.metric = answer_metric(self.kind, self.declared)
        self.label = self.kind.fit_label

    def default(self) -> dict[str, Any]:
        return {}

    def fit(self, truth: np.ndarray, values: np.ndarray) -> dict[str, Any]:
        return self.kind.fit(truth, values, self.declared)

    def apply(self, fitted: dict[str, Any], values: np.ndarray) -> np.ndarray:
        return np.asarray(self.kind.answer(values, fitted))

    def describe(self, fitted: dict[str, Any]) -> str:
        return self.kind.describe_fit(fitted)


def answer_metric(kind, metric: Metric) -> Metric:
    """`metric` scoring a kind's answers rather than class probabilities, under a name of its own so that the
    bootstrap's shortcuts for label metrics (argmax accuracy, argmax kappa) never read the answers as
    probabilities. Metric.__call__ hands floats over, so integer answers (grades, indicators, ranks) are made
    integers again first."""
    from dataclasses import replace

    score = kind.metrics[metric.name]

    def scored(truth: np.ndarray, answers: np.ndarray) -> float:
        answers = np.asarray(answers)
        if kind.answers_integers and answers.dtype.kind == "f":
            answers = np.rint(answers).astype(np.int64)
        return float(score(truth, answers))

    return replace(metric, name=f"{kind.name}:{metric.name}", fn=scored)


@dataclass
class CrossFit:
    """What `cross_fit` found: the parameters to submit with, and the honest figures behind that choice."""

    label: str
    params: Any  # refitted on all rows where the fit is used, else the default
    used: bool
    fitted_score: float  # cross-fitted: each part scored by a fit made without it
    default_score: float  # the default needs no fit, so this is honest as it stands
    submitted: np.ndarray  # the held-out probabilities of what is submitted (cross-fitted where the fit is used)
    interval: Interval  # of the figure printed for what is submitted
    folds: int
    note: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.fitted_score if self.used else self.default_score


def fold_of_rows(labels: np.ndarray, groups=None, folds: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """Part number (0..K-1) of every row: whole groups per part where groups are given, else stratified by label
    where every label has K rows, else plain shuffled parts. K shrinks to the rows (groups) there are."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    labels = np.asarray(labels)
    n = len(labels)
    part = np.zeros(n, dtype=np.int64)
    if groups is not None:
        k = min(folds, len(np.unique(np.asarray(groups))))
        if k < 2:
            return part
        splits = GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(labels, labels, np.asarray(groups))
    else:
        k = min(folds, n)
        if k < 2:
            return part
        if labels.ndim == 1 and np.unique(labels, return_counts=True)[1].min() >= k:
            splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(labels, labels)
        else:
            splits = KFold(k, shuffle=True, random_state=seed).split(labels)
    for number, (_, held) in enumerate(splits):
        part[held] = number
    return part


def cross_fit(
    fit: PostHocFit,
    labels: np.ndarray,
    inputs: np.ndarray,
    groups=None,
    *,
    folds: int = FOLDS,
    seed: int = SEED,
    parts: np.ndarray | None = None,
) -> CrossFit:
    """Fit on K-1 parts, score on the part left out, compare with the default on the same rows, refit on all.
    `parts` (one number per row) gives the parts, e.g. the cross-validation folds that made the predictions."""
    labels, inputs = np.asarray(labels), np.asarray(inputs)
    part = fold_of_rows(labels, groups, folds, seed) if parts is None else np.unique(parts, return_inverse=True)[1]
    k = int(part.max()) + 1 if len(part) else 0
    default_probs = fit.apply(fit.default(), inputs)
    default_score = fit.score(labels, default_probs)
    if k < 2:
        interval = bootstrap_interval(fit.metric, labels, default_probs, groups)
        note = f"{fit.label}: {len(labels)} held-out rows are too few to fit on some and score on others: default used"
        return CrossFit(fit.label, fit.default(), False, float("nan"), default_score, default_probs, interval, k, note)
    crossed = None
    for number in range(k):
        train, held = part != number, part == number
        params = fit.fit(labels[train], inputs[train])
        out = fit.apply(params, inputs[held])
        if crossed is None:
            crossed = np.zeros((len(labels), *out.shape[1:]), dtype=np.float64)
        crossed[held] = out
    assert crossed is not None
    fitted_score = fit.score(labels, crossed)
    used = fit.metric.better(fitted_score, default_score) and not np.isclose(fitted_score, default_score)
    submitted = crossed if used else default_probs
    params = fit.fit(labels, inputs) if used else fit.default()
    note = None
    if not used:
        note = (
            f"{fit.label} not used: cross-fitted {fit.metric.label} {fitted_score:.4f} ({k} parts) does not beat "
            f"the default's ({fit.describe(fit.default())}) {default_score:.4f}"
        )
    interval = bootstrap_interval(fit.metric, labels, submitted, groups)
    return CrossFit(fit.label, params, used, fitted_score, default_score, submitted, interval, k, note)


def default_answers_interval(kind, metric: Metric, truth, values, groups=None) -> Interval:
    """The figure of a kind's default answers (nothing fitted) on held-out (truth, values), with its interval:
    one fold's own figure, or a kind with nothing to fit."""
    return bootstrap_interval(answer_metric(kind, metric), truth, kind.answer(np.asarray(values), {}), groups)


def cross_fit_answers(kind, metric: Metric, truth, values, groups=None, *, parts=None) -> dict[str, Any]:
    """A target kind's post-hoc fit on held-out (truth, values), cross-fitted as `cross_fit` does; the record a
    run (config.json's target_fit) or a fold group (cv.json) stores: `fitted` is what predict applies (refitted
    on all rows, or {} - the kind's default - where the fit does not beat it), `metric` and `interval` are the
    figure of what is submitted, scored on rows no fit saw. A kind with nothing to fit gets its plain figure."""
    truth, values = np.asarray(truth), np.asarray(values)
    fit = kind.posthoc(metric)
    if fit is None:
        interval = default_answers_interval(kind, metric, truth, values, groups)
        return {
            "fitted": {},
            "used": False,
            "cross_fitted": False,
            "metric": interval.value,
            "metric_default": interval.value,
            "metric_cross_fitted": None,
            "interval": interval.to_dict(),
            "default": kind.describe_fit({}),
            "note": None,
        }
    crossed = cross_fit(fit, truth, values, groups, parts=parts)
    return {
        "fitted": crossed.params if crossed.used else {},
        "used": bool(crossed.used),
        "cross_fitted": True,
        "parts": crossed.folds,
        "metric": float(crossed.score),
        "metric_default": float(crossed.default_score),
        "metric_cross_fitted": None if np.isnan(crossed.fitted_score) else float(crossed.fitted_score),
        "interval": crossed.interval.to_dict(),
        "default": kind.describe_fit({}),
        "chosen": kind.describe_fit(crossed.params if crossed.used else {}),
        "note": crossed.note,
    }


def describe_answers_fit(record: dict[str, Any], metric: Metric, images: str) -> str:
    """One line for a `cross_fit_answers` record: what is submitted, its cross-fitted figure with its interval,
    and the default's figure beside it."""
    from .bootstrap import describe_figure

    figure = describe_figure(metric, record.get("interval"), record.get("metric"))
    if not record.get("cross_fitted"):
        return f"{images}: {figure} ({record.get('default', 'nothing fitted')})"
    if record.get("used"):
        return (
            f"{images}: {record['chosen']} (cross-fitted over {record['parts']} parts, refitted on all for predict): "
            f"{figure}, cross-fitted; default {record['default']} {record['metric_default']:.4f}"
        )
    return f"{images}: {record['default']} kept: {figure}; {record['note']}"
