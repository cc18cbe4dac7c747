"""Predicting the test set from an ensemble record (`<file>.csv.ensemble.json`, written by `ensemble`): every
member rebuilt and predicted again, blended with the weights (and, for a target kind other than one label per
image, the fit on the blend: thresholds, cut points) that `ensemble` chose and recorded. Nothing is weighed
again, so no held-out predictions or training images are needed: what a packaged ensemble's notebook has.

The members' test values are the ones `ensemble` blends (`ensembles.load_member` / `target_ensembles
.load_kind_member` take the same calls), and the blend is `ensembles.blend`, so the file equals `ensemble`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..competitions.metrics import softmax
from ..competitions.registry import Competition, resolve
from ..core.errors import KitError
from ..records.group_folder import FoldGroup, is_group
from ..records.run_config import CONFIG
from ..submissions.provenance import BLEND_SUFFIX
from .ensembles import blend


@dataclass
class EnsembleRecord:
    path: Path
    competition: Competition
    members: list[tuple[Path, str, float]]  # folder, "run" or "fold group", weight
    fitted: dict | None  # the kind's fit on the blend (None for one label per image)


def record_path(path: Path | str) -> Path:
    """The record itself, or the record beside the blended CSV that was named."""
    path = Path(path)
    return path if path.name.endswith(BLEND_SUFFIX) else path.with_name(path.name + BLEND_SUFFIX)


def read_ensemble_record(path: Path | str, root: Path | None = None) -> EnsembleRecord:
    """The record with every member found (under `root` by folder name where given: a packaged ensemble),
    else a one-line KitError naming the member and the fix."""
    path = record_path(path)
    try:
        record = json.loads(path.read_text())
        comp, rows = resolve(record["competition"]), record["members"]
    except (OSError, ValueError, KeyError, TypeError):
        raise KitError(f"{path} is missing or unreadable: pass the CSV `kaggle-kit ensemble` wrote") from None
    if comp.target != "label" and "fitted" not in record:
        raise KitError(f"{path} records no fit on the blend (an older ensemble): run `kaggle-kit ensemble` again")
    members = []
    for row in rows:
        folder = root / row["name"] if root is not None else Path(row["path"])
        if not (is_group(folder) or (folder / CONFIG).is_file()):
            raise KitError(
                f"ensemble member {row['path']} is not found at {folder} (moved or deleted): put it back, or run "
                f"`kaggle-kit ensemble` again on the members where they are now"
            )
        members.append((folder, row["kind"], float(row["weight"])))
    return EnsembleRecord(path, comp, members, record.get("fitted"))


def member_test_values(folder: Path, kind: str, comp: Competition, data_dir, device: str):
    """(test ids, test values, classes, layout): probabilities at the member's temperature for one label per
    image, the kind's values otherwise, as `ensemble` computed them."""
    from ..inference.predict import run_logits
    from .cross_validation import group_logits
    from .target_folds import group_test_values

    if comp.target != "label":
        if kind == "fold group":
            group = FoldGroup(folder)
            return group_test_values(group, group.plan(), data_dir, device)
        from ..inference.loading import load_run, open_run_layout
        from ..inference.target_predict import run_test_values

        loaded = load_run(folder, "best", device)
        layout = open_run_layout(loaded, data_dir)
        ids, values, _ = run_test_values(loaded, layout, None, None)
        return ids, values, list(loaded.classes), layout
    if kind == "fold group":
        got = group_logits(folder, data_dir, device=device)
        return got.test_ids, softmax(got.test_logits, got.oof.temperature), got.classes, got.layout
    run = run_logits(folder, data_dir, held_out=False, device=device)
    return run.test_ids, softmax(run.test_logits, run.temperature), run.classes, run.layout


def predict_ensemble(record: Path | str, out: Path | str, data_dir=None, *, device="auto", root=None) -> Path:
    """The ensemble's test submission written to `out` (checked against the sample as `ensemble` checks it)."""
    from ..submissions.files import read_sample, write_checked_submission
    from ..submissions.target_writing import write_target_submission

    read = read_ensemble_record(record, root)
    out = Path(out)
    if out.is_dir() or out.suffix.lower() != ".csv":
        raise KitError(f"--out {out}: give the submission's file name ending in .csv, e.g. {out.with_suffix('.csv')}")
    predicted = [member_test_values(f, kind, read.competition, data_dir, device) for f, kind, _ in read.members]
    ids, _, classes, layout = predicted[0]
    for (folder, _, _), (other_ids, *_rest) in zip(read.members, predicted):
        if list(other_ids) != list(ids):
            raise KitError(f"{folder} predicted other test ids than {read.members[0][0]}: use one --data-dir")
    values = blend([np.asarray(p[1]) for p in predicted], np.array([w for _, _, w in read.members]))
    comp, sample = read.competition, read_sample(layout.sample_path, read.competition)
    out.parent.mkdir(parents=True, exist_ok=True)
    if comp.target == "label":
        write_checked_submission(out, comp, sample, layout.sample_path, ids, values, classes)
    else:
        write_target_submission(out, comp, sample, layout.sample_path, ids, values, classes, read.fitted)
    return out
