"""`kaggle-kit package --rehearse`: run the packaged notebook here as Kaggle would, and check its submission.

The script runs in a fresh interpreter with no PYTHONPATH, pip's index unreachable (`PIP_NO_INDEX=1`,
`PIP_INDEX_URL` a closed port) and its inputs laid out as Kaggle lays them, under `OUT/rehearsal/`:
`input/<dataset-slug>/` (the dataset folder's files) and `input/<competition-slug>/` (the run's competition
download, unpacked as Kaggle attaches it). Its `working/submission.csv` is then compared with what
`kaggle-kit predict` writes for the same run or fold group (`expected.csv`: a group's prediction comes from the
caller, `expected`, since it belongs to a later stage): the same header and ids, probabilities equal within
`TOLERANCE`, labels identical. Every wheel is installed by the script itself from the dataset; nothing
importable is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..competitions.registry import resolve
from ..core.archive import extract
from ..core.errors import KitError
from ..records.ensemble_record import read_ensemble_record
from ..records.group_folder import FoldGroup, is_group
from ..records.run_config import RunConfig
from .notebook import FAILURE_PREFIX, STEP_PREFIX, SUBMISSION_NAME
from .package import DATASET_META, SCRIPT, read_package

TOLERANCE = 1e-5
# the notebook on ONNX Runtime is compared with predict on torch: the export is checked to this at package time
ENGINE_TOLERANCE = {"torch": TOLERANCE, "onnx": 1e-4}
CLOSED_INDEX = "http://127.0.0.1:9/simple/"  # the discard port: nothing listens, so any index use fails at once


@dataclass
class Rehearsal:
    submission: Path
    expected: Path
    rows: int
    max_difference: float
    seconds: float
    steps: dict[str, float] | None = None  # each step's seconds, from the notebook's log (install, weights, ...)


def rehearse(
    folder: Path | str,
    data_dir: Path | str | None = None,
    timeout: float = 1800,
    expected: Callable[[Path, Path | None, Path], Path] | None = None,
) -> Rehearsal:
    """`expected(source folder, data_dir, out)`: predict's file for what was packaged (default: predict of a run)."""
    import time

    folder = Path(folder).resolve()  # the script runs in its own working folder
    manifest = read_package(folder)
    comp = resolve(manifest["competition"])
    if expected is None and manifest.get("kind", "run") != "run":
        raise KitError(f"{folder} packages a {manifest['kind']}: rehearse it with `kaggle-kit package --rehearse`")
    place = folder / "rehearsal"
    shutil.rmtree(place, ignore_errors=True)
    inputs, working = place / "input", place / "working"
    working.mkdir(parents=True)
    _lay_out_dataset(folder / "dataset", inputs / manifest["dataset"].split("/")[1])
    _lay_out_competition(comp, _data_dir(manifest, data_dir), inputs / comp.slug)
    started = time.monotonic()
    _run_script(folder / "notebook" / SCRIPT, inputs, working, timeout)
    seconds = time.monotonic() - started
    predicted = (expected or _predict_run)(Path(manifest["run_dir"]), data_dir, place / "expected.csv")
    submission = working / SUBMISSION_NAME
    tolerance = ENGINE_TOLERANCE[manifest.get("engine", "torch")]
    rows, difference = compare(submission, predicted, comp.id_column, tolerance)
    steps = step_seconds((place / "notebook.log").read_text())
    return Rehearsal(submission, predicted, rows, difference, seconds, steps)


def _predict_run(run_dir: Path, data_dir, out: Path) -> Path:
    from ..inference.predict import predict_run

    return predict_run(run_dir, data_dir, "best", None, out, device="cpu").path


def step_seconds(log: str) -> dict[str, float]:
    """Each step's seconds from the notebook's `kaggle-kit step: NAME (at T s)` lines (the last, `done`, ends them)."""
    marks = re.findall(rf"^{re.escape(STEP_PREFIX)}(\w+) \(at ([0-9.]+) s\)$", log, flags=re.MULTILINE)
    return {name: float(end) - float(start) for (name, start), (_, end) in zip(marks, marks[1:])}


def _data_dir(manifest: dict, data_dir) -> Path:
    given = data_dir
    if not given:
        try:
            source = manifest["run_dir"]
            if manifest.get("kind") == "ensemble":  # the record names the download its members predicted
                given = read_ensemble_record(source).data_dir
            elif is_group(source):
                given = FoldGroup(source).plan()["data_dir"]
            else:
                given = RunConfig.read(source).data_dir
        except (KitError, KeyError):  # the run folder is gone or damaged: say that its data folder is unknown
            given = None
    if not given or not Path(given).is_dir():
        raise KitError(
            f"the run's data folder {given or '(not recorded)'} is not there: pass --data-dir with the "
            "competition's download"
        )
    return Path(given)


def _lay_out_dataset(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.name != DATASET_META:
            shutil.copy2(path, target / path.name)


def _lay_out_competition(comp, data_dir: Path, target: Path) -> None:
    """The competition's files as Kaggle attaches them: the download's zip unpacked, else its files as they are."""
    archive = data_dir / comp.archive_name
    if archive.is_file():
        extract(archive, target)  # members are checked: none lands outside the target
        return
    target.mkdir(parents=True)
    for path in data_dir.iterdir():
        if not path.name.startswith("."):
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)


def _run_script(script: Path, inputs: Path, working: Path, timeout: float) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("PIP_")}
    env.update(
        KAGGLE_KIT_INPUT_ROOT=str(inputs.resolve()),
        KAGGLE_KIT_WORKING_DIR=str(working.resolve()),
        PIP_NO_INDEX="1",
        PIP_INDEX_URL=CLOSED_INDEX,
        PYTHONUNBUFFERED="1",
    )
    try:
        done = subprocess.run(
            [sys.executable, str(script.resolve())],
            cwd=working,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise KitError(
            f"the rehearsal of {script} ran past {timeout:g} s: look for a step waiting on the network"
        ) from None
    (working.parent / "notebook.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        failed = [line for line in done.stderr.splitlines() if line.startswith(FAILURE_PREFIX)]
        said = failed[-1] if failed else f"exit code {done.returncode}"
        raise KitError(f"the rehearsal failed: {said} (log: {working.parent / 'notebook.log'})")


def compare(submission: Path, expected: Path, id_column: str, tolerance: float = TOLERANCE) -> tuple[int, float]:
    """Rows, and the largest difference between the two files; a KitError naming the first mismatch."""
    if not submission.is_file():
        raise KitError(f"the notebook wrote no {submission.name} in its working folder: the step 'predict' failed")
    got, want = (pd.read_csv(p, dtype=str, na_filter=False) for p in (submission, expected))
    if list(got.columns) != list(want.columns):
        raise KitError(
            f"{submission} has the header {list(got.columns)[:3]}..., predict's has {list(want.columns)[:3]}..."
        )
    got, want = got.set_index(id_column).sort_index(), want.set_index(id_column).sort_index()
    if not got.index.equals(want.index):
        raise KitError(f"{submission} and predict's file list different ids: the notebook read other test images")
    try:
        difference = float(np.abs(got.to_numpy(float) - want.to_numpy(float)).max(initial=0.0))
    except ValueError:  # labels, not probabilities
        differing = (got != want).any(axis=1)
        if differing.any():
            raise KitError(
                f"{submission} differs from predict's labels at {int(differing.sum())} ids, first {differing.idxmax()}"
            ) from None
        return len(got), 0.0
    if difference > tolerance:
        raise KitError(
            f"{submission} differs from predict's probabilities by up to {difference:.2e} (tolerance {tolerance:g})"
        )
    return len(got), difference
