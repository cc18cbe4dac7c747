"""Choosing pseudo-labels: `train --pseudo-labels SOURCE [--pseudo-threshold P]`.

    SOURCE (a run folder or a fold group: one entry each in SOURCES) -> its calibrated probabilities for every
    test image, through predict's own functions (a run: its stored TTA choice and temperature; a group: what
    `predict GROUP` submits, the folds' averaged test logits at the OOF temperature) -> the test images whose
    max probability >= P, labelled with the argmax -> pseudo_labels.PseudoLabels for `train`

The default threshold, 0.9, is read on calibrated probabilities: the source's temperature was fitted on its
validation split, so among images predicted with confidence >= 0.9 about nine in ten or more are right. The
threshold is therefore the least accuracy of the labels added, whatever the competition's metric; a lower one
adds more images with more wrong labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..competitions.registry import Competition
from ..competitions.targets import target_of
from ..core.errors import KitError
from ..data.layout import Layout
from ..records.pseudo_labels import PseudoLabels
from ..records.run_folder import RunDir

DEFAULT_THRESHOLD = 0.9


@dataclass
class SourceProbabilities:
    """What any source gives: calibrated probabilities per test id, and what they came from."""

    kind: str  # "run" or "group"
    competition: str
    fingerprint: str | None  # the data it was trained on
    classes: list[str]
    ids: list[str]
    probabilities: np.ndarray  # (n, classes), rows in `ids` order
    excluded: set[str]  # test ids with no real prediction (images that do not decode)
    details: dict


def run_probabilities(source: Path, layout: Layout, device: str) -> SourceProbabilities:
    """A run folder's best.pt on the test set, with the TTA and temperature `predict` would submit with."""
    from ..inference.loading import load_run
    from ..inference.predict import calibrated_test_probabilities

    config = RunDir(source).read_config()
    _check_source_data(source, config.competition, config.fingerprint, layout)
    if not RunDir(source).has_checkpoint("best"):
        raise KitError(
            f"--pseudo-labels {source} has no best.pt, so no test predictions: let the run finish an epoch "
            f"(`kaggle-kit train --resume {source}`) or pass another run"
        )
    loaded = load_run(source, "best", device)
    test = calibrated_test_probabilities(loaded, layout, calibrated=True)
    details = {"source_checkpoint": "best", "source_epoch": loaded.epoch, "source_tta": test.tta}
    details["source_temperature"] = test.temperature
    return SourceProbabilities(
        "run",
        loaded.competition.name,
        loaded.config.fingerprint,
        list(loaded.classes),
        test.ids,
        test.probabilities,
        set(test.bad_ids),
        details,
    )


def group_probabilities(source: Path, layout: Layout, device: str) -> SourceProbabilities:
    """A fold group's test probabilities as `predict GROUP` submits them; every fold must have finished."""
    from ..records.group_folder import FoldGroup
    from .cross_validation import group_logits, unfinished_folds

    group = FoldGroup(source)
    plan = group.plan()
    _check_source_data(source, plan.get("competition"), plan.get("fingerprint"), layout)
    missing = unfinished_folds(group)
    if missing:
        raise KitError(
            f"--pseudo-labels {source}: fold(s) {', '.join(map(str, missing))} of {group.k} have not finished, so "
            f"the group has no test predictions: `kaggle-kit train --resume {source}` first"
        )
    blended = group_logits(source, layout.root, device=device)
    details = {"source_checkpoint": "best", "source_folds": group.k}
    details["source_temperature"] = blended.oof.temperature
    return SourceProbabilities(
        "group",
        blended.competition.name,
        plan["fingerprint"],
        list(blended.classes),
        blended.test_ids,
        blended.test_probabilities(),
        set(blended.test_bad_ids),
        details,
    )


def kind_probabilities(source: Path, layout: Layout, device: str) -> SourceProbabilities:
    """A top-k source's softmax over its known classes on the test images, as its predict sees them (a run: its
    chosen views; a group: the folds' average): inference/target_predict, workflows/target_folds. No temperature:
    a new-class threshold is fitted on these very probabilities, so they are kept as the model gives them."""
    from ..inference.loading import load_run
    from ..inference.target_predict import run_test_values
    from ..records.group_folder import FoldGroup
    from .target_folds import group_test_values

    if (source / "folds.json").is_file():
        group = FoldGroup(source)
        plan = group.plan()
        _check_source_data(source, plan.get("competition"), plan.get("fingerprint"), layout)
        ids, values, classes, _ = group_test_values(group, plan, layout.root, device)
        return SourceProbabilities("group", plan["competition"], plan["fingerprint"], classes, ids, values, set(), {})
    config = RunDir(source).read_config()
    _check_source_data(source, config.competition, config.fingerprint, layout)
    loaded = load_run(source, "best", device)
    ids, values, streamed = run_test_values(loaded, layout, None, None)
    details = {"source_checkpoint": "best", "source_epoch": loaded.epoch, "source_tta": len(streamed.views) > 1}
    classes = list(loaded.classes)
    return SourceProbabilities("run", config.competition, config.fingerprint, classes, ids, values, set(), details)


# (kind, does this folder hold one, its probabilities): a group folder holds folds.json, a run config.json
SOURCES: list[tuple[str, Callable[[Path], bool], Callable[[Path, Layout, str], SourceProbabilities]]] = [
    ("group", lambda path: (path / "folds.json").is_file(), group_probabilities),
    ("run", lambda path: (path / "config.json").is_file(), run_probabilities),
]


def check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:  # NaN fails this too
        raise KitError(f"--pseudo-threshold {threshold}: give a probability in (0, 1], e.g. {DEFAULT_THRESHOLD}")


def select(
    competition: str | Competition,
    data_dir: Path | str | None,
    source: Path | str,
    threshold: float = DEFAULT_THRESHOLD,
    device: str = "auto",
) -> PseudoLabels:
    """The test images of `competition`'s data that `source` predicts with calibrated probability >= `threshold`."""
    from ..competitions.registry import resolve
    from ..data.layout import open_layout

    check_threshold(threshold)
    comp = resolve(competition) if isinstance(competition, str) else competition
    target_of(comp).check_pseudo_labels()  # a kind with no confident prediction is refused, saying why
    source = Path(source)
    kind, probabilities_of = _source_kind(source)
    if comp.target != "label":  # rankings: the kind's softmax, with the views its predict uses
        probabilities_of = kind_probabilities
    layout = open_layout(comp, data_dir)
    found = probabilities_of(source, layout, device)
    if found.classes != list(layout.classes):
        raise KitError(
            f"--pseudo-labels {source} predicts other classes than {layout.sample_path} lists: pass a source "
            f"trained on this data"
        )
    keep = np.array([i not in found.excluded for i in found.ids]) & (found.probabilities.max(1) >= threshold)
    if not keep.any():
        best = float(found.probabilities.max(1).max()) if len(found.ids) else float("nan")
        raise KitError(
            f"no test image of {source} reaches --pseudo-threshold {threshold:g} (the most confident is "
            f"{best:.3f}): lower the threshold or use a stronger source"
        )
    return PseudoLabels(
        ids=tuple(np.asarray(found.ids, dtype=object)[keep].tolist()),
        labels=found.probabilities[keep].argmax(1).astype(np.int64),
        classes=tuple(layout.classes),
        source=str(source.resolve()),
        source_kind=kind,
        source_fingerprint=str(found.fingerprint),
        threshold=float(threshold),
        test_images=len(found.ids) - len(found.excluded),
        details=found.details,
    )


def _source_kind(source: Path):
    if not source.is_dir():
        raise KitError(
            f"--pseudo-labels {source}: no such folder; pass a run folder or fold group made by `kaggle-kit train`"
        )
    for kind, holds, probabilities_of in SOURCES:
        if holds(source):
            return kind, probabilities_of
    raise KitError(
        f"--pseudo-labels {source} is not a run folder or fold group (no config.json or folds.json): pass a folder "
        f"made by `kaggle-kit train`"
    )


def _check_source_data(source: Path, competition: str | None, fingerprint: str | None, layout: Layout) -> None:
    """A source of another competition, or of other data of this one, would label these test images wrongly."""
    comp = layout.competition
    if competition != comp.name:
        raise KitError(
            f"--pseudo-labels {source} is a {competition} source, not {comp.name}: pass a {comp.name} run or "
            f"group trained on this data"
        )
    if fingerprint != layout.fingerprint():
        raise KitError(
            f"--pseudo-labels {source} was trained on other data (fingerprint {fingerprint} vs "
            f"{layout.fingerprint()} of {layout.root}): pass a source trained on this --data-dir, or its --data-dir"
        )
