"""`ensemble` for targets other than one label per image: label sets, values, grades and rankings.

Members are runs (their validation values as their predict sees them: inference/target_predict) or fold groups
(their OOF values); their test values are blended with weights chosen as the label path chooses them
(workflows/ensembles): `auto` minimises a smooth proper score on the shared held-out values (the kind's
`blend_loss`: binary log loss of sigmoid probabilities, squared error of values and grades, log loss of the
softmax), cross-fitted against equal weights and judged by the competition's metric. The kind's own fit (label-set
thresholds, grade cut points, the new-class threshold) is then cross-fitted on the blend's held-out values, each
blended by weights not fitted on it, and applied to the blended test values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..competitions.bootstrap import Interval, bootstrap_interval
from ..competitions.metrics import Metric
from ..competitions.posthoc import answer_metric, cross_fit, cross_fit_answers, describe_answers_fit
from ..competitions.targets import TargetKind, target_of
from ..core.errors import KitError
from ..records.group_folder import FoldGroup
from ..records.run_folder import RunDir
from .ensembles import (
    MIN_WEIGHT,
    EnsembleResult,
    Member,
    _record,
    blend,
    check_members,
    ensemble,
    member_identity,
    parse_weights,
    shared_predictions,
)
from .target_folds import OOF_FILE, group_test_values


def default_answers_metric(kind: TargetKind, metric: Metric) -> Metric:
    """`metric` of values through the kind's default answers (no fitted thresholds): what blend weights are
    judged by, before the kind's own fit is made on the blend."""
    answers = answer_metric(kind, metric)
    return replace(metric, name=f"{kind.name}-values:{metric.name}", fn=lambda t, v: answers(t, kind.answer(v, {})))


@dataclass
class KindWeightsFit:
    """Blend weights as a post-hoc fit (competitions/posthoc): inputs (rows, members, ...) of values; default
    equal weights; fitted by minimising the kind's blend loss on the simplex (scipy's SLSQP, members few)."""

    kind: TargetKind
    metric: Metric
    members: int
    label: str = "ensemble weights"

    def default(self) -> np.ndarray:
        return np.full(self.members, 1.0 / self.members)

    def fit(self, truth: np.ndarray, stacked: np.ndarray) -> np.ndarray:
        from scipy.optimize import minimize

        found = minimize(
            lambda w: self.kind.blend_loss(truth, self.apply(w, stacked)),
            self.default(),
            method="SLSQP",
            bounds=[(0.0, 1.0)] * self.members,
            constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
        )
        weights = np.clip(found.x, 0.0, None)
        if (weights >= MIN_WEIGHT).any():  # as the label path: a member weighing less adds noise, not skill
            weights = np.where(weights < MIN_WEIGHT, 0.0, weights)
        return weights / weights.sum()

    def apply(self, weights: np.ndarray, stacked: np.ndarray) -> np.ndarray:
        return np.tensordot(np.asarray(weights, dtype=np.float64), np.moveaxis(stacked, 1, 0), axes=1)

    def score(self, truth: np.ndarray, values: np.ndarray) -> float:
        return float(self.metric(truth, values))

    def describe(self, weights: np.ndarray) -> str:
        return (
            "equal weights" if np.allclose(weights, weights[0]) else "weights " + ", ".join(f"{w:.2f}" for w in weights)
        )


def kind_test_values(path: Path, kind: str, data_dir, device: str):
    """A run's or fold group's (test ids, test values, classes, layout): what `ensemble` blends and what
    `predict_ensemble` blends again (a run is fitted first where it needs to be)."""
    from ..inference.loading import load_run, open_run_layout
    from ..inference.target_predict import run_test_values

    if kind == "fold group":
        group = FoldGroup(path)
        return group_test_values(group, group.plan(), data_dir, device)
    loaded = load_run(path, "best", device)
    layout = open_run_layout(loaded, data_dir)
    test_ids, test_values, _ = run_test_values(loaded, layout, None, None)
    return test_ids, test_values, list(loaded.classes), layout


def load_kind_member(path: Path, kind: str, comp, fingerprint, data_dir, device: str) -> Member:
    """A run's or fold group's held-out and test values, as `ensembles.Member` holds probabilities."""
    from ..inference.target_predict import held_out_values

    if kind == "fold group" and not (FoldGroup(path).path / OOF_FILE).is_file():
        raise KitError(f"{path}: no {OOF_FILE}; finish the group's folds (kaggle-kit train --folds) first")
    test_ids, test_values, classes, layout = kind_test_values(path, kind, data_dir, device)
    if kind == "fold group":
        oof = np.load(FoldGroup(path).path / OOF_FILE, allow_pickle=False)
        ids, truth, values = oof["ids"].tolist(), oof["truth"], oof["values"]
    else:
        ids, truth, values = held_out_values(RunDir(path))
    return Member(path, kind, comp, fingerprint, list(classes), ids, truth, values, test_ids, test_values, layout)


@dataclass
class KindBlend:
    weights: np.ndarray
    weights_figure: object  # CrossFit where the weights were fitted, else the equal/given blend's Interval
    record: dict  # the kind's fit on the blend (posthoc.cross_fit_answers)
    notes: list[str] = field(default_factory=list)


def weigh(kind: TargetKind, metric: Metric, chosen, truth: np.ndarray, probs: list[np.ndarray], groups) -> KindBlend:
    stacked = np.stack(probs, axis=1)
    fit = KindWeightsFit(kind, default_answers_metric(kind, metric), len(probs))
    if isinstance(chosen, str) and chosen == "auto":
        crossed = cross_fit(fit, truth, stacked, groups)
        weights, held_out, figure = np.asarray(crossed.params), crossed.submitted, crossed
        notes = [crossed.note] if crossed.note else []
    else:
        weights = fit.default() if isinstance(chosen, str) else np.asarray(chosen)
        held_out = fit.apply(weights, stacked)
        figure, notes = bootstrap_interval(fit.metric, truth, held_out, groups), []
    record = cross_fit_answers(kind, metric, truth, held_out, groups)
    return KindBlend(weights, figure, record, notes)


def ensemble_any(paths: list[Path | str], out: Path | str, weights: str = "auto", data_dir=None, *, device="auto"):
    """`ensemble` for every target kind: one label per image through `ensembles.ensemble`, the others here."""
    paths, out = [Path(p) for p in paths], Path(out)
    if not paths or member_identity(paths[0])[1].target == "label":
        return ensemble(paths, out, weights, data_dir, device=device)
    if out.is_dir() or out.suffix.lower() != ".csv":
        raise KitError(f"--out {out}: give the submission's file name ending in .csv, e.g. {out.with_suffix('.csv')}")
    check_members(paths)
    return ensemble_targets(paths, out, parse_weights(weights, len(paths)), data_dir, device)


def ensemble_targets(paths: list[Path], out: Path, chosen, data_dir, device: str) -> EnsembleResult:
    """Members (checked by `ensemble_any`) weighed and blended as their kind's values."""
    from ..inference.held_out import held_out_groups
    from ..submissions.files import read_sample
    from ..submissions.provenance import file_sha256
    from ..submissions.target_writing import write_target_submission

    members = [load_kind_member(p, *member_identity(p), data_dir, device) for p in paths]
    shared = shared_predictions(members)
    comp, layout = members[0].competition, members[0].layout
    kind, metric = target_of(comp), comp.metric
    groups = held_out_groups(comp, layout, shared.ids)
    blended = weigh(kind, metric, chosen, shared.labels, shared.probs, groups)
    if any(m.test_ids != members[0].test_ids for m in members):
        raise KitError(f"the members predicted other test ids than {members[0].path}: use one --data-dir")
    test_values = blend([m.test_probs for m in members], blended.weights)
    sample = read_sample(layout.sample_path, comp)
    out.parent.mkdir(parents=True, exist_ok=True)
    fitted, classes = blended.record["fitted"], members[0].classes
    write_target_submission(out, comp, sample, layout.sample_path, members[0].test_ids, test_values, classes, fitted)
    scorer = default_answers_metric(kind, metric)
    rows = [
        {
            "path": str(m.path.resolve()),
            "name": m.name,
            "kind": m.kind,
            "weight": float(w),
            "score": float(scorer(shared.labels, p)),
            "interval": bootstrap_interval(scorer, shared.labels, p, groups).to_dict(),
        }
        for m, w, p in zip(members, blended.weights, shared.probs)
    ]
    crossed = getattr(blended.weights_figure, "used", False)
    notes = [
        *blended.notes,
        "the blend: " + describe_answers_fit(blended.record, metric, f"{len(shared.ids)} held-out"),
    ]
    result = EnsembleResult(
        out, len(sample), comp, rows, float(blended.record["metric"]), float("nan"), len(shared.ids),
        chosen if isinstance(chosen, str) else "given", layout.sample_path,
        [warning for m in members for warning in m.warnings],
        blend_interval=Interval.from_dict(blended.record["interval"]), cross_fitted=bool(crossed), notes=notes,
    )  # fmt: skip
    _record(result, file_sha256(out), layout, blended.record["fitted"])
    return result
