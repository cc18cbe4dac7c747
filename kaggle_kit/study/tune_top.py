"""`ensemble STUDY --top K`: the K best finished trials of a `tune` study, as run folders (or fold groups) to blend.

Read from each trial's trial.json (state and score, written when the trial ended), not from the study's storage:
a database study needs no password here, and a trial folder is what `ensemble` blends.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..competitions.registry import resolve
from ..core.errors import KitError
from .tune_plan import STUDY_FILE, load_plan
from .tune_trial import TRIAL_FILE

# why the blend's figure flatters even when its weights are cross-fitted: the members were picked on those images
SELECTION_NOTE = (
    "the {k} trials were chosen (by the study, then by --top) on the same validation images the blend is scored on: "
    "its figure is optimistic by that choice too; the Kaggle score is the honest one"
)


def is_study(path: Path | str) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


def top_trials(study_dir: Path | str, k: int) -> list[Path]:
    """The folders of the `k` complete trials with the best scores (the metric's direction), best first."""
    if k < 2:
        raise KitError(f"--top {k}: an ensemble blends 2 or more trials")
    plan = load_plan(study_dir)
    metric = resolve(plan.competition).metric
    done = []
    for record_file in sorted(plan.path.glob(f"trial-*/{TRIAL_FILE}")):
        record = json.loads(record_file.read_text())
        if record.get("state") == "complete" and record.get("value") is not None:
            done.append((float(record["value"]), int(record["trial"]), record_file.parent))
    if len(done) < k:
        raise KitError(
            f"--top {k}: {plan.path} has {len(done)} complete trial{'s' if len(done) != 1 else ''}: run more "
            f"(kaggle-kit tune --resume {plan.path} --trials N) or give a smaller --top"
        )
    done.sort(key=lambda row: (-row[0] if metric.higher_is_better else row[0], row[1]))
    return [folder for _, _, folder in done[:k]]
