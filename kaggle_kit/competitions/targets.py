"""What a competition asks for per image, as one object each stage calls: its target kind.

A declaration says `target = "label" | "multilabel" | "regression" | "ordinal"` (default label: one class per
image, today's path, which keeps its own code). A kind answers every stage's question about the target:
- labels: `read_labels` turns the train CSV into the truth array (and refuses bad rows in one line);
- model: `head_size` outputs, trained with `loss` on those truths;
- held-out predictions: `values` turns logits into what the metric reads, `fit` fits what is applied after
  training (thresholds, cut points) on held-out truths and values;
- submission: `submission_columns` writes the values in the sample's form, `read_submission` reads one back
  (refusing the wrong form), and `score` scores it by the declared metric.

Truth and values per kind: multilabel (n, labels) 0/1 and probabilities; regression (n,) floats; ordinal (n,)
integer grades and (n,) regressed floats, cut into grades at fitted points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..core.errors import KitError
from .metrics import AUC, F1_MACRO, F1_MICRO, QWK, Metric
from .target_fits import choose_labels, cut, fit_cut_points, fit_label_thresholds, fit_threshold
from .target_metrics import F1_SAMPLES, MAP_AT_K, MEAN_AUC, RMSE, _f1, grade_kappa, map_at_k, mean_column_auc, rmse

KINDS = ("label", "multilabel", "regression", "ordinal", "topk")


NO_PSEUDO_VALUES = (
    "a regressed value or grade carries no probability, so no threshold says which test predictions are right "
    "(use ensemble or more folds instead)"
)
NO_PSEUDO_SETS = (
    "pseudo_labels.csv holds one class per image, and a label set would need every label's probability to be "
    "confident at once: train on the labelled images (or blend with ensemble)"
)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def _bad_rows(where, ids, mask: np.ndarray, what: str, fix: str) -> KitError:
    first = int(np.flatnonzero(mask)[0])
    return KitError(f"{where}: id {ids[first]} {what} ({int(mask.sum())} such rows); {fix}")


@dataclass(frozen=True)
class TargetKind:
    """The shared parts; each kind overrides what differs."""

    name: str = "label"
    metrics: dict[str, Callable[..., float]] = field(default_factory=dict, repr=False)

    def head_size(self, classes: list[str]) -> int:
        return len(classes)

    def check_metric(self, metric: Metric, where) -> None:
        if self.metrics and metric.name not in self.metrics:
            names = ", ".join(self.metrics)
            raise KitError(f"{where}: metric {metric.key} does not score a {self.name} target: use one of {names}")

    def fit(self, truth: np.ndarray, values: np.ndarray, metric: Metric) -> dict[str, Any]:
        """What is applied to values after training (thresholds, cut points), fitted on held-out predictions."""
        return {}

    def score(self, metric: Metric, truth: np.ndarray, values: np.ndarray, fitted: dict[str, Any]) -> float:
        """The metric of held-out values as the written submission would get it (fitted thresholds applied)."""
        return float(self.metrics[metric.name](truth, self.answer(values, fitted)))

    def answer(self, values: np.ndarray, fitted: dict[str, Any]) -> np.ndarray:
        """Values as the submission states them (label sets, grades); the values themselves where it writes them."""
        return values

    # post-hoc fit: what `fit` learns, cross-fitted by competitions/posthoc (fitted on some held-out parts, scored
    # on the others, used only where that beats the default: `answer(values, {})`)
    fits: bool = field(default=False, init=False, repr=False)  # whether `fit` learns anything
    answers_integers: bool = field(default=False, init=False, repr=False)  # answers are grades, indicators, ranks
    fit_label: str = field(default="nothing to fit", init=False, repr=False)

    def describe_fit(self, fitted: dict[str, Any]) -> str:
        return self.fit_label

    def posthoc(self, metric: Metric):
        """The kind's fit as `posthoc.cross_fit` takes it; None where the kind fits nothing."""
        from .posthoc import AnswerFit

        return AnswerFit(self, metric) if self.fits else None

    def blend_loss(self, truth: np.ndarray, values: np.ndarray) -> float:
        """The smooth proper score ensemble weights minimise (the training loss on values): the metrics
        themselves (AUC, F1 of sets, kappa, MAP@k) are step functions of the weights, flat almost everywhere."""
        raise NotImplementedError(f"a {self.name} target has no blend loss")

    # why `train --pseudo-labels` cannot take this kind; None where a confident prediction is one class a test
    # image is given (one label, a top-k softmax), which pseudo_labels.csv holds
    no_pseudo_labels: str | None = field(default=None, init=False, repr=False)

    def check_pseudo_labels(self) -> None:
        if self.no_pseudo_labels:
            raise KitError(f"--pseudo-labels: a {self.name} target is not pseudo-labelled: {self.no_pseudo_labels}")

    def view_values(self, logits):
        """A torch batch of logits as what test-time augmentation averages over views (probabilities for
        sigmoid and softmax heads, the outputs themselves for regression); `averaged_values` reads the average."""
        return logits

    def averaged_values(self, averaged: np.ndarray) -> np.ndarray:
        return self.values(averaged)

    # how `kaggle-kit sample` writes this kind's generated download (competitions/any_sample.write_any_sample
    # reads it: the writers import the registry, which imports this module, so the kind names its writer)
    sample_writer: str = field(default="classes", init=False, repr=False)


@dataclass(frozen=True)
class DrawnTarget(TargetKind):
    """A kind whose generated download draws truths (`draw`), paints them into images and writes them in the train
    CSV's form (`label_frame`, `placeholder`): competitions/target_samples."""

    sample_writer: str = field(default="drawn", init=False, repr=False)

    def read_answers(self, frame, id_column: str, label_column: str, classes: list[str], where) -> np.ndarray:
        """Hidden answers (`score FILE --answers`) as the truth array: read as the train CSV is."""
        return self.read_labels(frame, id_column, label_column, classes, where)


# ----------------------------------------------------------------------------------------------- multi-label


@dataclass(frozen=True)
class MultiLabel(DrawnTarget):
    """Several labels per image, each a sigmoid output trained with binary cross-entropy. The submission form
    follows the sample: one probability column per label ("columns", scored by mean column-wise AUC), or one
    column of space-separated label sets ("set", scored by an F-score over the sets chosen at a threshold)."""

    name: str = "multilabel"
    form: str = "columns"  # "columns" | "set"

    def __post_init__(self):
        probabilities = {"mean_auc": mean_column_auc, "auc": mean_column_auc}
        sets = {"f1-samples": _f1("samples"), "f1-micro": _f1("micro"), "f1-macro": _f1("macro")}
        object.__setattr__(self, "metrics", probabilities if self.form == "columns" else sets)
        for name in ("fits", "answers_integers"):
            object.__setattr__(self, name, self.form == "set")
        object.__setattr__(self, "fit_label", "label-set thresholds")
        object.__setattr__(self, "no_pseudo_labels", NO_PSEUDO_SETS)

    def describe_fit(self, fitted) -> str:
        if self.form == "columns":
            return "the probabilities as they are"
        if "thresholds" in fitted:
            return "per-label thresholds " + ", ".join(f"{t:.2f}" for t in fitted["thresholds"])
        return f"one global threshold {fitted.get('threshold', 0.5):.2f}"

    def loss(self, logits, targets):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())

    def values(self, logits: np.ndarray) -> np.ndarray:
        return _sigmoid(logits)

    def view_values(self, logits):
        return logits.sigmoid()

    def blend_loss(self, truth, values) -> float:
        p = np.clip(np.asarray(values, dtype=np.float64), 1e-7, 1 - 1e-7)
        return float(-np.mean(np.where(np.asarray(truth) == 1, np.log(p), np.log(1 - p))))

    def averaged_values(self, averaged: np.ndarray) -> np.ndarray:
        return np.asarray(averaged, dtype=np.float64)

    def read_labels(self, frame: pd.DataFrame, id_column: str, label_column: str, classes: list[str], where):
        ids = frame[id_column].tolist()
        if self.form == "columns":
            missing = [c for c in classes if c not in frame.columns]
            if missing:
                raise KitError(f"{where}: label column {missing[0]!r} of the sample is missing: download it again")
            cells = frame[classes].astype(str).apply(lambda col: col.str.strip())
            bad = ~cells.isin(["0", "1", "0.0", "1.0"]).all(axis=1).to_numpy()
            if bad.any():
                raise _bad_rows(
                    where, ids, bad, "has a label cell other than 0 or 1", "write 0 or 1 in every label column"
                )
            return cells.astype(float).astype(np.int64).to_numpy()
        sets = [str(s).split() for s in frame[label_column]]
        known = set(classes)
        unknown = np.array([any(t not in known for t in s) for s in sets])
        if unknown.any():
            row = sets[int(np.flatnonzero(unknown)[0])]
            name = next(t for t in row if t not in known)
            raise _bad_rows(
                where,
                ids,
                unknown,
                f"has label {name!r}, not one of the {len(classes)} labels",
                "fix the label set (labels are space-separated names the training labels use)",
            )
        index = {c: i for i, c in enumerate(classes)}
        truth = np.zeros((len(sets), len(classes)), dtype=np.int64)
        for row, labels in enumerate(sets):
            truth[row, [index[t] for t in labels]] = 1
        return truth

    def draw(self, rng: np.random.Generator, n: int, classes: list[str]) -> np.ndarray:
        """Generated truths: each label on a third of the time; a label set is never empty."""
        truth = (rng.random((n, len(classes))) < 0.35).astype(np.int64)
        if self.form == "set":
            empty = truth.sum(axis=1) == 0
            truth[np.flatnonzero(empty), rng.integers(0, len(classes), int(empty.sum()))] = 1
        return truth

    def label_frame(self, truth: np.ndarray, classes: list[str], label_column: str) -> dict[str, list]:
        """Truths in the train CSV's columns (what `read_labels` reads back)."""
        if self.form == "columns":
            return {c: truth[:, j].tolist() for j, c in enumerate(classes)}
        return {label_column: [" ".join(c for c, on in zip(classes, row) if on) for row in truth]}

    def placeholder(self, classes: list[str], label_column: str) -> dict[str, Any]:
        """The sample submission's filler values."""
        return {c: 0.5 for c in classes} if self.form == "columns" else {label_column: classes[0]}

    def label_names(self, frame: pd.DataFrame, label_column: str) -> list[str]:
        """The labels a set-form train CSV uses, sorted."""
        return sorted({t for s in frame[label_column] for t in str(s).split()})

    def fit(self, truth, values, metric) -> dict[str, Any]:
        if self.form == "columns":
            return {}
        score = self.metrics[metric.name]
        overall = fit_threshold(truth, values, score)
        return {"threshold": overall, "thresholds": fit_label_thresholds(truth, values, score, overall)}

    def answer(self, values, fitted):
        if self.form == "columns":
            return values
        return choose_labels(values, fitted.get("thresholds", fitted.get("threshold", 0.5)))

    def submission_columns(self, values, classes, fitted, label_column: str) -> dict[str, list]:
        if self.form == "columns":
            return {c: values[:, j].tolist() for j, c in enumerate(classes)}
        chosen = self.answer(values, fitted)
        return {label_column: [" ".join(c for c, on in zip(classes, row) if on) for row in chosen]}

    def read_submission(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        if self.form == "set":
            return self.read_labels(frame, id_column, label_column, classes, where)
        missing = [c for c in classes if c not in frame.columns]
        if missing:
            raise KitError(f"{where}: column {missing[0]!r} is missing: write one probability column per label")
        values = frame[classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values).all(axis=1) | ((values < 0) | (values > 1)).any(axis=1)
        if bad.any():
            ids = frame[id_column].tolist()
            raise _bad_rows(where, ids, bad, "has a value that is no probability in [0, 1]", "write probabilities")
        return values


# ------------------------------------------------------------------------------------------ values and grades


@dataclass(frozen=True)
class Regression(DrawnTarget):
    """One float per image from one output, trained with MSE on the target standardised to about -1..1 by the
    declared `value_range` (Pawpularity's 1..100 trained raw makes the head start 50 units off and diverge at a
    usual learning rate; `init` declares the training values' range); its values clipped to that range."""

    name: str = "regression"
    value_range: tuple[float, float] | None = None

    def __post_init__(self):
        object.__setattr__(self, "metrics", {"rmse": rmse})
        object.__setattr__(self, "no_pseudo_labels", NO_PSEUDO_VALUES)

    def head_size(self, classes) -> int:
        return 1

    def unit(self) -> tuple[float, float]:
        """(center, scale) mapping the declared range onto -1..1; (0, 1) without one."""
        if not self.value_range:
            return 0.0, 1.0
        low, high = self.value_range
        return (low + high) / 2, max((high - low) / 2, 1e-9)

    def loss(self, logits, targets):
        import torch.nn.functional as F

        center, scale = self.unit()
        return F.mse_loss(logits.float().squeeze(1), (targets.float() - center) / scale)

    def values(self, logits: np.ndarray) -> np.ndarray:
        center, scale = self.unit()
        values = np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)[:, 0] * scale + center
        return np.clip(values, *self.value_range) if self.value_range else values

    def read_labels(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        values = pd.to_numeric(frame[label_column], errors="coerce").to_numpy(dtype=np.float64)
        ids = frame[id_column].tolist()
        bad = ~np.isfinite(values)
        if bad.any():
            raise _bad_rows(where, ids, bad, f"has no number in column {label_column!r}", "write a number there")
        if self.value_range:
            low, high = self.value_range
            outside = (values < low) | (values > high)
            if outside.any():
                raise _bad_rows(
                    where,
                    ids,
                    outside,
                    f"has a {label_column} outside the declared range {low:g}..{high:g}",
                    "fix the row, or widen labels.value_range in the declaration",
                )
        return values

    def read_answers(self, frame, id_column: str, label_column: str, classes: list[str], where) -> np.ndarray:
        # a number a row, the range unchecked: `init` declares the training values' range, and a hidden answer
        # outside it is still a truth (grades keep their check: Ordinal reads submissions as labels)
        return self.read_submission(frame, id_column, label_column, classes, where)

    def submission_columns(self, values, classes, fitted, label_column: str) -> dict[str, list]:
        return {label_column: self.answer(values, fitted).tolist()}

    def blend_loss(self, truth, values) -> float:
        return float(np.mean((np.asarray(truth, dtype=np.float64) - np.asarray(values, dtype=np.float64)) ** 2))

    def draw(self, rng: np.random.Generator, n: int, classes: list[str]) -> np.ndarray:
        low, high = self.value_range or (1.0, 100.0)
        return np.round(rng.uniform(low, high, n)).astype(np.float64)  # whole numbers, as Pawpularity's

    def label_frame(self, truth: np.ndarray, classes: list[str], label_column: str) -> dict[str, list]:
        return {label_column: [int(v) if float(v).is_integer() else float(v) for v in truth]}

    def placeholder(self, classes: list[str], label_column: str) -> dict[str, Any]:
        low, high = self.value_range or (1.0, 100.0)
        return {label_column: (low + high) / 2}

    def fraction(self, value: float) -> float:
        """Where a value lies in its range, 0..1 (what a generated image shows)."""
        low, high = self.value_range or (1.0, 100.0)
        return (float(value) - low) / max(high - low, 1e-9)

    def read_submission(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        if label_column not in frame.columns:
            raise KitError(f"{where}: column {label_column!r} is missing: write one number per row there")
        values = pd.to_numeric(frame[label_column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise _bad_rows(where, frame[id_column].tolist(), bad, "has no number", f"write a number in {label_column}")
        return values


@dataclass(frozen=True)
class Ordinal(Regression):
    """Integer grades 0..n-1 (QWK), trained as regression, the predicted value cut into grades at points fitted
    on held-out predictions to maximise QWK (the "optimized rounder" winners use), starting at k + 0.5."""

    name: str = "ordinal"
    n_grades: int = 5

    def __post_init__(self):
        n = self.n_grades
        object.__setattr__(self, "metrics", {"qwk": lambda t, g: grade_kappa(t, g, n), "rmse": rmse})
        for name, value in (("fits", True), ("answers_integers", True), ("fit_label", "grade cut points")):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "no_pseudo_labels", NO_PSEUDO_VALUES)

    def describe_fit(self, fitted) -> str:
        if not fitted.get("cut_points"):
            return "plain rounding (cuts at k + 0.5)"
        return "cut points " + ", ".join(f"{p:.3f}" for p in fitted["cut_points"])

    def read_labels(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        values = pd.to_numeric(frame[label_column], errors="coerce").to_numpy(dtype=np.float64)
        outside = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= self.n_grades)
        if outside.any():
            raise _bad_rows(
                where,
                frame[id_column].tolist(),
                outside,
                f"has a grade outside 0..{self.n_grades - 1} in column {label_column!r}",
                "fix the row, or declare labels.classes with every grade",
            )
        return values.astype(np.int64)

    def values(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(logits, dtype=np.float64).reshape(len(logits), -1)[:, 0]

    def fit(self, truth, values, metric) -> dict[str, Any]:
        return {"cut_points": fit_cut_points(truth, values, self.n_grades)}

    def answer(self, values, fitted) -> np.ndarray:
        points = fitted.get("cut_points") or (np.arange(self.n_grades - 1) + 0.5).tolist()
        return cut(values, points)

    def submission_columns(self, values, classes, fitted, label_column: str) -> dict[str, list]:
        return {label_column: self.answer(values, fitted).tolist()}

    def draw(self, rng: np.random.Generator, n: int, classes: list[str]) -> np.ndarray:
        return rng.integers(0, self.n_grades, n).astype(np.int64)

    def label_frame(self, truth: np.ndarray, classes: list[str], label_column: str) -> dict[str, list]:
        return {label_column: np.asarray(truth, dtype=np.int64).tolist()}

    def placeholder(self, classes: list[str], label_column: str) -> dict[str, Any]:
        return {label_column: 0}

    def fraction(self, value: float) -> float:
        return float(value) / max(self.n_grades - 1, 1)

    def read_submission(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        if label_column not in frame.columns:
            raise KitError(f"{where}: column {label_column!r} is missing: write one integer grade per row there")
        return self.read_labels(frame, id_column, label_column, classes, where)


# ------------------------------------------------------------------------------------------------ top k


@dataclass(frozen=True)
class TopK(DrawnTarget):
    """Up to k space-separated classes per image in ranked order, scored by MAP@k (Humpback Whale). Trained as
    one label with softmax over the known classes; an optional new class (new_whale) is no output of the model:
    its images train nothing and it is inserted in the ranking before the first class whose probability falls
    under a threshold fitted on held-out predictions. Its index in truths and answers is len(classes)."""

    name: str = "topk"
    k: int = 5
    new_class: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "metrics", {"map_at_k": map_at_k})
        for name in ("fits", "answers_integers"):
            object.__setattr__(self, name, bool(self.new_class))
        object.__setattr__(self, "fit_label", "new-class threshold")

    def describe_fit(self, fitted) -> str:
        if "threshold" not in fitted:
            return f"{self.new_class} ranked last"
        return f"{self.new_class} before the first class under p = {fitted['threshold']:.3f}"

    def check_classes(self, classes: list[str], where) -> None:
        if self.k > len(classes) + bool(self.new_class):
            raise KitError(
                f"{where}: k = {self.k} is larger than the {len(classes)} classes (new class included): lower "
                "submission.k in the declaration (or init --k)"
            )

    def loss(self, logits, targets):
        import torch.nn.functional as F

        known = targets.long() < logits.shape[1]  # the new class trains nothing
        if not bool(known.any()):
            return logits.float().sum() * 0.0
        return F.cross_entropy(logits.float()[known], targets.long()[known])

    def values(self, logits: np.ndarray) -> np.ndarray:
        from .metrics import softmax

        return softmax(logits)

    def view_values(self, logits):
        return logits.softmax(dim=1)

    def blend_loss(self, truth, values) -> float:
        truth, values = np.asarray(truth), np.asarray(values, dtype=np.float64)
        known = np.flatnonzero(truth < values.shape[1])  # the new class is no output: it weighs nothing
        return float(-np.mean(np.log(np.clip(values[known, truth[known]], 1e-7, 1.0)))) if len(known) else 0.0

    def averaged_values(self, averaged: np.ndarray) -> np.ndarray:
        return np.asarray(averaged, dtype=np.float64)

    def label_names(self, frame: pd.DataFrame, label_column: str) -> list[str]:
        names = sorted({str(v) for v in frame[label_column] if str(v) != self.new_class})
        return sorted(names, key=int) if names and all(n.lstrip("-").isdigit() for n in names) else names

    def _indices(self, names, classes, ids, where, what: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(classes)}
        if self.new_class:
            index[self.new_class] = len(classes)
        unknown = np.array([n not in index for n in names])
        if unknown.any():
            name = names[int(np.flatnonzero(unknown)[0])]
            raise _bad_rows(
                where,
                ids,
                unknown,
                f"has {what} {name!r}, not one of the {len(index)} classes",
                "use the class names of the training labels",
            )
        return np.array([index[n] for n in names], dtype=np.int64)

    def read_labels(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        self.check_classes(classes, where)
        names = [str(v).strip() for v in frame[label_column]]
        return self._indices(names, classes, frame[id_column].tolist(), where, "label")

    def fit(self, truth, values, metric) -> dict[str, Any]:
        if not self.new_class:
            return {}
        grid = np.unique(np.quantile(values.max(axis=1), np.linspace(0, 1, 41)))
        scores = [map_at_k(truth, self.answer(values, {"threshold": t})) for t in grid]
        return {"threshold": float(grid[int(np.argmax(scores))]) if len(grid) else 0.0}

    def answer(self, values, fitted) -> np.ndarray:
        """(n, k) class indices, best first; the new class (index len(classes)) before the first class under the
        threshold (or after the k - 1 best, where none falls under it)."""
        values = np.asarray(values)
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.k]
        if not self.new_class:
            return order
        below = np.take_along_axis(values, order, axis=1) < fitted.get("threshold", 0.0)
        at = np.where(below.any(axis=1), below.argmax(axis=1), self.k - 1)
        rank = np.arange(self.k)[None, :]
        before = np.concatenate([order[:, :1], order[:, :-1]], axis=1)  # rank r after the insert holds rank r - 1
        return np.where(rank < at[:, None], order, np.where(rank == at[:, None], values.shape[1], before))

    def submission_columns(self, values, classes, fitted, label_column: str) -> dict[str, list]:
        names = [*classes, self.new_class]
        return {label_column: [" ".join(names[i] for i in row) for row in self.answer(values, fitted)]}

    def read_submission(self, frame, id_column, label_column, classes, where) -> np.ndarray:
        if label_column not in frame.columns:
            raise KitError(f"{where}: column {label_column!r} is missing: write up to {self.k} classes there")
        ids, rows = frame[id_column].tolist(), [str(v).split() for v in frame[label_column]]
        long = np.array([len(r) > self.k for r in rows])
        if long.any():
            raise _bad_rows(where, ids, long, f"ranks more than k = {self.k} classes", f"keep the best {self.k}")
        ranked = np.full((len(rows), self.k), -1, dtype=np.int64)
        for n, row in enumerate(rows):
            ranked[n, : len(row)] = self._indices(row, classes, [ids[n]] * len(row), where, "class")
        return ranked

    def draw(self, rng: np.random.Generator, n: int, classes: list[str]) -> np.ndarray:
        truth = np.arange(n) % len(classes)
        rng.shuffle(truth)
        if self.new_class:  # a fifth of the images show a class never seen in training
            truth[rng.random(n) < 0.2] = len(classes)
        return truth

    def label_frame(self, truth, classes, label_column: str) -> dict[str, list]:
        names = [*classes, self.new_class]
        return {label_column: [names[i] for i in truth]}

    def placeholder(self, classes: list[str], label_column: str) -> dict[str, Any]:
        names = ([self.new_class] if self.new_class else []) + list(classes)
        return {label_column: " ".join(names[: self.k])}


# ------------------------------------------------------------------------------------------------- choosing

# metrics each kind accepts from a declaration, and the one `init` picks when Kaggle's name is unknown
DEFAULT_METRICS = {
    "multilabel-columns": MEAN_AUC,
    "multilabel-set": F1_SAMPLES,
    "regression": RMSE,
    "ordinal": QWK,
    "topk": MAP_AT_K,
}
ACCEPTED = {
    "multilabel-columns": (MEAN_AUC, AUC),
    "multilabel-set": (F1_SAMPLES, F1_MICRO, F1_MACRO),
    "regression": (RMSE,),
    "ordinal": (QWK, RMSE),
    "topk": (MAP_AT_K,),
}


def refuse_other_targets(comp, what: str) -> None:
    """`what` works on one label per image only so far: refused in one line for any other target kind."""
    if getattr(comp, "target", "label") != "label":
        raise KitError(
            f"{what} is built for one label per image; {comp.name} asks for a {comp.target} target, which it does "
            "not take yet: use train, train --folds, predict, validate and score"
        )


def target_of(comp) -> TargetKind:
    """The declared competition's target kind, with what it reads from the declaration."""
    kind = getattr(comp, "target", "label")
    if kind == "multilabel":
        return MultiLabel(form="columns" if comp.submission_kind == "probabilities" else "set")
    if kind == "regression":
        return Regression(value_range=comp.value_range)
    if kind == "ordinal":
        return Ordinal(n_grades=len(comp.declared_classes) or 5)
    if kind == "topk":
        return TopK(k=comp.top_k, new_class=comp.new_class)
    return TargetKind()
