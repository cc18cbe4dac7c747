"""Predicting the test set from an ensemble record (`<file>.csv.ensemble.json`, written by `ensemble`): every
member rebuilt and predicted again, blended with the weights (and, for a target kind other than one label per
image, the fit on the blend: thresholds, cut points) that `ensemble` chose and recorded. Nothing is weighed
again, so no held-out predictions or training images are needed: what a packaged ensemble's notebook has.

The members' test values are the ones `ensemble` blends (`target_ensembles.kind_test_values` for a target kind,
the same calls as `ensembles.load_member` for labels), and the blend is `ensembles.blend`, so the file equals
`ensemble`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..competitions.metrics import softmax
from ..competitions.registry import Competition
from ..core.errors import KitError
from ..records.ensemble_record import read_ensemble_record
from .ensembles import blend


@dataclass
class EnsemblePrediction:
    path: Path
    rows: int
    sample_path: Path
    members: int
    warnings: list[str] = field(default_factory=list)


def member_test_values(folder: Path, kind: str, comp: Competition, data_dir, device: str):
    """(test ids, test values, classes, layout): probabilities at the member's temperature for one label per
    image, the kind's values otherwise, as `ensemble` computed them."""
    from ..inference.predict import run_logits
    from .cross_validation import group_logits
    from .target_ensembles import kind_test_values

    if comp.target != "label":
        return kind_test_values(folder, kind, data_dir, device)
    if kind == "fold group":
        got = group_logits(folder, data_dir, device=device)
        return got.test_ids, softmax(got.test_logits, got.oof.temperature), got.classes, got.layout
    run = run_logits(folder, data_dir, held_out=False, device=device)
    return run.test_ids, softmax(run.test_logits, run.temperature), run.classes, run.layout


def predict_ensemble(
    record: Path | str, out: Path | str, data_dir=None, *, device: str = "auto", root: Path | None = None
) -> EnsemblePrediction:
    """The ensemble's test submission written to `out` (checked against the sample as `ensemble` checks it)."""
    from ..submissions.files import read_sample, write_checked_submission
    from ..submissions.target_writing import write_target_submission

    read = read_ensemble_record(record, root)
    out = Path(out)
    if out.is_dir() or out.suffix.lower() != ".csv":
        raise KitError(f"--out {out}: give the submission's file name ending in .csv, e.g. {out.with_suffix('.csv')}")
    predicted = [member_test_values(m.folder, m.kind, read.competition, data_dir, device) for m in read.members]
    ids, _, classes, layout = predicted[0]
    for member, (other_ids, *_rest) in zip(read.members, predicted):
        if list(other_ids) != list(ids):
            raise KitError(f"{member.folder} predicted other test ids than {read.members[0].folder}: one --data-dir")
    values = blend([np.asarray(p[1]) for p in predicted], np.array([m.weight for m in read.members]))
    comp, sample = read.competition, read_sample(layout.sample_path, read.competition)
    out.parent.mkdir(parents=True, exist_ok=True)
    if comp.target == "label":
        write_checked_submission(out, comp, sample, layout.sample_path, ids, values, classes)
    else:
        write_target_submission(out, comp, sample, layout.sample_path, ids, values, classes, read.fitted)
    return EnsemblePrediction(out, len(sample), Path(layout.sample_path), len(read.members))
