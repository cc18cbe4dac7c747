"""`ensemble`: a weighted blend of runs and fold groups, weighed on the held-out predictions they share.

    members    each a run (its validation split: best.pt in its predict's configuration, at its temperature) or
               a fold group (its OOF predictions, at the OOF temperature); refused when they are of another
               competition, other data or other classes, or when their held-out ids do not cover the same images
    weights    non-negative, summing to one: `equal`, given (`0.7,0.3`), or `auto`, fitted on the shared held-out
               predictions for the competition's metric (fit_weights)
    output     the members' test probabilities blended with the weights, written through write_checked_submission,
               and `<file>.ensemble.json` beside it (members, weights, scores) for `submit` and the ledger

Blending is in probability space: a mixture of calibrated members stays a probability model, and for log loss
its weights are a maximum-likelihood fit (EM below).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..competitions.bootstrap import Interval, bootstrap_interval
from ..competitions.metrics import Metric, log_loss, softmax
from ..competitions.posthoc import CrossFit, cross_fit
from ..competitions.registry import Competition, resolve
from ..competitions.targets import refuse_other_targets
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.group_folder import FoldGroup, is_group
from ..records.run_config import CONFIG
from ..records.run_folder import RunDir

EM_ROUNDS = 2000
EM_TOLERANCE = 1e-10


@dataclass
class Member:
    """One member's predictions as the blend uses them: probabilities, held-out and test."""

    path: Path
    kind: str  # "run" or "fold group"
    competition: Competition
    fingerprint: str | None
    classes: list[str]
    held_out_ids: list[str]
    held_out_labels: np.ndarray
    held_out_probs: np.ndarray
    test_ids: list[str] | None = None
    test_probs: np.ndarray | None = None
    layout: Any = None
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


# --------------------------------------------------------------------------------------- members


def member_identity(path: Path | str) -> tuple[str, Competition, str | None]:
    """(kind, competition, data fingerprint) from the folder's own files, before any model is loaded."""
    path = Path(path)
    if is_group(path):
        plan = FoldGroup(path).plan()
        return "fold group", resolve(plan["competition"]), plan.get("fingerprint")
    if (path / CONFIG).is_file():
        config = RunDir(path).read_config()
        if config.competition is None:
            raise KitError(f"{path / CONFIG}: no competition field; the run folder is damaged")
        return "run", resolve(config.competition), config.fingerprint
    raise KitError(f"{path}: neither a run folder (config.json) nor a fold group (folds.json); pass one of those")


def check_members(paths: list[Path]) -> None:
    """Every member of one competition, trained on the same data; said for the first that is not."""
    if len(paths) < 2:
        raise KitError("ensemble needs at least two members (runs or fold groups)")
    if len({Path(p).resolve() for p in paths}) < len(paths):
        raise KitError("a member is named twice: give each run or fold group once (weights say how much each counts)")
    groups = [Path(p).resolve() for p in paths if is_group(p)]
    for path in paths:
        inside = next((g for g in groups if Path(path).resolve().parent == g), None)
        if inside is not None:  # its held-out predictions are the group's own OOF rows: the weights would mean nothing
            raise KitError(f"{path} is a fold of the member {inside}: give the group or its fold, not both")
    parents = [Path(p).resolve().parent for p in paths]
    shared = next((parent for parent in parents if parents.count(parent) > 1 and is_group(parent)), None)
    if shared is not None:  # folds hold out disjoint images: they share none to weigh on
        raise KitError(
            f"two members are folds of the group {shared}, each held out on other images: give the group itself "
            f"(its folds averaged) instead"
        )
    first_kind, first_comp, first_print = member_identity(paths[0])
    for path in paths[1:]:
        kind, comp, fingerprint = member_identity(path)
        if comp.name != first_comp.name:
            raise KitError(
                f"{path} is a {comp.name} {kind}, but {paths[0]} is {first_comp.name}: blend members of one competition"
            )
        if fingerprint != first_print:
            raise KitError(
                f"{path} was trained on other data than {paths[0]} (fingerprint {fingerprint} vs {first_print}): "
                f"blend members trained on the same download"
            )


def load_member(path: Path | str, data_dir=None, *, test: bool = True, device: str = "auto") -> Member:
    from ..inference.predict import run_logits
    from .cross_validation import group_logits

    path = Path(path)
    kind, comp, fingerprint = member_identity(path)
    if kind == "fold group":
        oof = FoldGroup(path).oof()
        member = Member(path, kind, comp, fingerprint, [], oof.ids, oof.labels, oof.probs)
        if test:
            blended = group_logits(path, data_dir, device=device)
            member.classes, member.layout, member.warnings = blended.classes, blended.layout, blended.warnings
            member.test_ids, member.test_probs = blended.test_ids, softmax(blended.test_logits, oof.temperature)
        else:
            member.classes = list(RunDir(FoldGroup(path).fold_dir(1)).read_config().classes or [])
        return member
    run = run_logits(path, data_dir, test=test, device=device)
    member = Member(
        path,
        kind,
        comp,
        fingerprint,
        run.classes,
        run.val_ids,
        run.val_labels,
        softmax(run.val_logits, run.temperature),
        layout=run.layout,
        warnings=run.warnings,
    )
    if test:
        member.test_ids, member.test_probs = run.test_ids, softmax(run.test_logits, run.temperature)
    return member


@dataclass
class Shared:
    """The held-out images every member predicted: ids, labels and each member's probabilities for them."""

    ids: list[str]
    labels: np.ndarray
    probs: list[np.ndarray]


def shared_predictions(members: list[Member]) -> Shared:
    """The smallest member's held-out ids, which every other member must cover (with the same labels)."""
    base = min(members, key=lambda m: len(m.held_out_ids))
    for member in members:
        if member.classes != base.classes:
            raise KitError(f"{member.path} predicts other classes than {base.path}: blend members of one competition")
        position = {image_id: n for n, image_id in enumerate(member.held_out_ids)}
        missing = [i for i in base.held_out_ids if i not in position]
        if missing:
            raise KitError(
                f"the held-out predictions of {member.path} do not cover id {missing[0]} of {base.path} "
                f"({len(missing)} of {len(base.held_out_ids)} missing): blend runs validated on the same split "
                f"(same --seed and --val-fraction) or fold groups"
            )
    ids, labels = list(base.held_out_ids), np.asarray(base.held_out_labels)
    probs = []
    for member in members:
        position = {image_id: n for n, image_id in enumerate(member.held_out_ids)}
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        if not np.array_equal(member.held_out_labels[rows], labels):
            raise KitError(f"{member.path} and {base.path} label their shared held-out images differently: other data")
        probs.append(np.asarray(member.held_out_probs, np.float64)[rows])
    return Shared(ids, labels, probs)


# --------------------------------------------------------------------------------------- weights


def blend(probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    return sum(w * p for w, p in zip(weights, probs))


MIN_WEIGHT = 0.05  # a member weighing less adds noise and inference time, not skill: dropped


def fit_weights(labels: np.ndarray, probs: list[np.ndarray]) -> np.ndarray:
    """Non-negative weights summing to one that minimise the log loss of the blended probabilities, whatever the
    competition's metric: a smooth proper score, where accuracy, AUC, F1 and kappa are step functions of the
    weights, flat almost everywhere, so a search on them follows noise. Log loss of a mixture is convex in its
    weights and its minimiser the maximum-likelihood mixture, which EM reaches on the simplex with no step size
    to tune. Members under MIN_WEIGHT are then dropped and the rest renormalised."""
    weights = _mixture_weights(labels, probs)
    if (weights >= MIN_WEIGHT).any():
        weights = np.where(weights < MIN_WEIGHT, 0.0, weights)
    return weights / weights.sum()


@dataclass
class BlendWeightsFit:
    """Ensemble weights as a post-hoc fit (competitions/posthoc.py): inputs (rows, members, classes); the default
    is equal weights; judged by the competition's metric of the blend, what is submitted."""

    metric: Metric
    members: int
    label: str = "ensemble weights"

    def default(self) -> np.ndarray:
        return np.full(self.members, 1.0 / self.members)

    def fit(self, labels: np.ndarray, stacked: np.ndarray) -> np.ndarray:
        return fit_weights(labels, [stacked[:, m] for m in range(self.members)])

    def apply(self, weights: np.ndarray, stacked: np.ndarray) -> np.ndarray:
        return np.einsum("m,nmc->nc", np.asarray(weights, dtype=np.float64), stacked)

    def score(self, labels: np.ndarray, submitted: np.ndarray) -> float:
        return float(self.metric(labels, submitted))

    def describe(self, weights: np.ndarray) -> str:
        if np.allclose(weights, weights[0]):
            return "equal weights"
        return "weights " + ", ".join(f"{w:.2f}" for w in weights)


def _mixture_weights(labels: np.ndarray, probs: list[np.ndarray]) -> np.ndarray:
    rows = np.arange(len(labels))
    likelihood = np.stack([np.clip(p[rows, labels], 1e-15, 1.0) for p in probs], axis=1)  # (n, members)
    weights = np.full(len(probs), 1.0 / len(probs))
    for _ in range(EM_ROUNDS):
        mixed = likelihood * weights
        updated = (mixed / mixed.sum(axis=1, keepdims=True)).mean(axis=0)
        if np.abs(updated - weights).max() < EM_TOLERANCE:
            return updated
        weights = updated
    return weights


def parse_weights(text: str, count: int) -> str | np.ndarray:
    """`auto`, `equal`, or `W,...` (one per member, non-negative, normalised to sum one)."""
    if text in ("auto", "equal"):
        return text
    try:
        values = np.array([float(part) for part in text.split(",")])
    except ValueError:
        raise KitError(f"--weights {text}: give auto, equal, or one number per member (e.g. 0.7,0.3)") from None
    if len(values) != count:
        raise KitError(f"--weights {text}: {len(values)} numbers for {count} members; give one per member")
    if (values < 0).any() or not np.isfinite(values).all() or values.sum() <= 0:
        raise KitError(f"--weights {text}: weights must be non-negative numbers, not all zero")
    return values / values.sum()


# --------------------------------------------------------------------------------------- the command


@dataclass
class EnsembleResult:
    path: Path
    rows: int
    competition: Competition
    members: list[dict[str, Any]]  # path, kind, weight, score and its interval (held-out, shared images)
    blend_score: float  # cross-fitted where the weights were fitted on the held-out predictions
    blend_log_loss: float
    shared_images: int
    weights_mode: str
    sample_path: Path
    warnings: list[str]
    blend_interval: Interval | None = None
    cross_fitted: bool = False
    notes: list[str] = field(default_factory=list)


def choose_weights(chosen: str | np.ndarray, metric: Metric, shared: Shared, groups=None) -> tuple[np.ndarray, Any]:
    """(weights, the blend's held-out figure): `auto` weights cross-fitted (competitions/posthoc.py), so the
    figure is scored on parts the weights were not fitted on, and equal weights kept unless they lose there."""
    stacked = np.stack(shared.probs, axis=1)  # (rows, members, classes)
    fit = BlendWeightsFit(metric, len(shared.probs))
    if isinstance(chosen, str) and chosen == "auto":
        crossed = cross_fit(fit, shared.labels, stacked, groups)
        return np.asarray(crossed.params), crossed
    weights = fit.default() if isinstance(chosen, str) else np.asarray(chosen)
    return weights, bootstrap_interval(metric, shared.labels, fit.apply(weights, stacked), groups)


def ensemble(
    paths: list[Path | str],
    out: Path | str,
    weights: str = "auto",
    data_dir: Path | str | None = None,
    *,
    device: str = "auto",
) -> EnsembleResult:
    """Check the members, weigh them on their shared held-out predictions, blend their test probabilities, write."""
    from ..inference.held_out import held_out_groups
    from ..submissions.files import read_sample, write_checked_submission
    from ..submissions.provenance import file_sha256

    paths = [Path(p) for p in paths]
    out = Path(out)
    if out.is_dir() or out.suffix.lower() != ".csv":
        raise KitError(f"--out {out}: give the submission's file name ending in .csv, e.g. {out.with_suffix('.csv')}")
    check_members(paths)
    chosen = parse_weights(weights, len(paths))
    refuse_other_targets(member_identity(paths[0])[1], "ensembles.ensemble (target_ensembles.ensemble_any takes any)")
    members = [load_member(p, data_dir, device=device) for p in paths]
    shared = shared_predictions(members)
    comp, layout = members[0].competition, members[0].layout
    groups = held_out_groups(comp, layout, shared.ids)
    w, figure = choose_weights(chosen, comp.metric, shared, groups)
    test_ids = members[0].test_ids
    for member in members[1:]:
        if member.test_ids != test_ids:
            raise KitError(f"{member.path} predicted other test ids than {members[0].path}: use one --data-dir")
    sample = read_sample(layout.sample_path, comp)
    out.parent.mkdir(parents=True, exist_ok=True)
    probs = blend([m.test_probs for m in members if m.test_probs is not None], w)
    validation = write_checked_submission(out, comp, sample, layout.sample_path, test_ids, probs, members[0].classes)
    result = _result(out, validation.rows, comp, members, shared, w, figure, chosen, groups, layout.sample_path)
    _record(result, file_sha256(out), layout)
    return result


def _result(out, rows, comp, members, shared, w, figure, chosen, groups, sample_path) -> EnsembleResult:
    metric = comp.metric
    crossed = figure if isinstance(figure, CrossFit) else None
    interval = crossed.interval if crossed else figure
    notes = [crossed.note] if crossed and crossed.note else []
    dropped = [m.name for m, wm in zip(members, w) if wm == 0]
    if crossed and crossed.used and dropped:
        notes.append(f"dropped (weight under {MIN_WEIGHT}): {', '.join(dropped)}")
    member_rows = [
        {
            "path": str(m.path.resolve()),
            "name": m.name,
            "kind": m.kind,
            "weight": float(wm),
            "score": float(metric(shared.labels, p)),
            "interval": bootstrap_interval(metric, shared.labels, p, groups).to_dict(),
        }
        for m, wm, p in zip(members, w, shared.probs)
    ]
    held_out = crossed.submitted if crossed else blend(shared.probs, w)
    return EnsembleResult(
        out,
        rows,
        comp,
        member_rows,
        float(interval.value),
        float(log_loss(shared.labels, held_out)),
        len(shared.ids),
        chosen if isinstance(chosen, str) else "given",
        sample_path,
        [warning for m in members for warning in m.warnings],
        blend_interval=interval,
        cross_fitted=bool(crossed and crossed.used),
        notes=notes,
    )


def _record(result: EnsembleResult, sha256: str, layout, fitted: dict | None = None) -> None:
    """Beside the CSV: what `submit` puts in the ledger (members and weights as the recipe, blend score as local)."""
    from ..submissions.provenance import blend_record_path

    record = {
        "competition": result.competition.name,
        "file": str(result.path.resolve()),
        "sha256": sha256,
        "metric": result.competition.metric.name,
        "weights": result.weights_mode,
        "members": result.members,
        "blend_score": result.blend_score,
        "blend_interval": result.blend_interval.to_dict() if result.blend_interval else None,
        "blend_cross_fitted": result.cross_fitted,
        "shared_images": result.shared_images,
        "data_dir": str(layout.root.resolve()),
        "sample": str(Path(layout.sample_path).resolve()),
    }
    if fitted is not None:  # a target kind's fit on the blend, which ensemble_predict applies again
        record["fitted"] = fitted
    atomic_write_text(blend_record_path(result.path), json.dumps(record, indent=1))
