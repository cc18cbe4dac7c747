"""The run folders on disk: where they are (the runs root) and what a submission file says about its run.

`describe_run` finds the run that made a submission file and reads its recipe and validation score; `submit`
records them in the ledger, `report` and `experiment` summarise recipes with `recipe_summary`. The run is found
by the file's hash first: `predict` records every file it writes (`record_written`: hash, path, run folder, data
folder, sample) in `<submissions dir>/written.jsonl`, so a file written anywhere (`--out sub.csv`) leads back to
its run and its data. Files made elsewhere fall back to `submissions/<competition>/<run>.csv` and the run's
config.json under the runs root.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .competition import Competition, resolve
from .errors import KitError
from .ledger import append_json_line, default_submissions_dir, now_iso, read_json_lines

WRITTEN_NAME = "written.jsonl"  # beside the ledger: every file predict wrote, by hash
RUNS_DIR_ENV = "KAGGLE_KIT_RUNS_DIR"
DEFAULT_RUNS_DIR = Path("runs")  # `train` writes runs/<competition>/<run> unless told otherwise


def runs_root() -> Path:
    """Where submit looks for the run that made a file: $KAGGLE_KIT_RUNS_DIR, else runs/."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def written_index() -> Path:
    return default_submissions_dir() / WRITTEN_NAME


def record_written(path: Path, run_dir: Path, competition: str, data_dir: Path | None, sample: Path | None) -> None:
    """Remember which run (and data folder) wrote the file at `path`, keyed by the file's hash."""
    entry = {
        "sha256": file_sha256(path), "path": _absolute(path), "run_dir": _absolute(run_dir),
        "competition": competition, "data_dir": _absolute(data_dir), "sample": _absolute(sample), "time": now_iso(),
    }
    try:
        append_json_line(written_index(), entry)
    except OSError as error:  # the file is written and valid; only `submit FILE` loses the way back to its run
        print(f"warning: cannot record {path} in {written_index()} ({error.strerror}): submit it with --run "
              f"{run_dir}", file=sys.stderr)


def _absolute(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path else None  # the index is read from any working folder


def find_written(path: Path) -> dict | None:
    """The newest record of a file with these very bytes whose run folder still exists, or None."""
    sha256 = file_sha256(path)
    for entry in reversed(read_json_lines(written_index())):
        if entry.get("sha256") == sha256 and (Path(str(entry.get("run_dir"))) / "config.json").is_file():
            return entry
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _competition(competition: Competition | str) -> Competition:
    return competition if isinstance(competition, Competition) else resolve(competition)


@dataclass
class RunInfo:
    """What a submission file says about the run that made it."""

    name: str | None = None
    run_dir: Path | None = None
    config: dict = field(default_factory=dict)
    recipe: str | None = None  # short summary
    local_score: float | None = None  # validation score with the competition metric
    data_dir: Path | None = None  # the data folder the file was predicted from, when recorded
    sample: Path | None = None  # the sample submission it was checked against, when recorded


def _find_run_dir(name: str, comp_name: str | None) -> Path | None:
    root = runs_root()
    candidates = [root / name] + ([root / comp_name / name] if comp_name else [])
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    return None


def recipe_summary(recipe: dict) -> str | None:
    if not isinstance(recipe, dict) or not recipe:
        return None
    parts = [str(recipe.get("arch", "?")), str(recipe.get("name", "custom"))]
    for key, label in (("epochs", "e"), ("batch_size", "bs"), ("lr", "lr")):
        if recipe.get(key) is not None:
            parts.append(f"{label}{recipe[key]:g}" if isinstance(recipe[key], float) else f"{label}{recipe[key]}")
    for key in ("schedule",):
        if recipe.get(key):
            parts.append(str(recipe[key]))
    if recipe.get("aug"):
        parts.append(f"aug={recipe['aug']}")
    return " ".join(parts)


def _validation_score(run_dir: Path, comp: Competition, temperature) -> float | None:
    """The competition metric on the run's saved validation predictions (temperature applied), if present."""
    import numpy as np

    from .metrics import softmax

    path = run_dir / "val_predictions.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            labels, logits = saved["labels"], saved["logits"]
        probs = softmax(logits, float(temperature) if temperature else 1.0)
        value = comp.metric(labels, probs)
    except (OSError, KeyError, ValueError, TypeError):
        return None  # a damaged file must not block a submission; the ledger just lacks the number
    return None if value != value else value


def describe_run(
    file: Path, competition: Competition | str | None = None, run_dir: Path | str | None = None
) -> tuple[Competition, RunInfo]:
    """The competition and run of a submission file: `submissions/<competition>/<run>.csv` and the run's config.json."""
    file = Path(file)
    explicit = _competition(competition) if competition else None
    from_folder = None
    try:
        from_folder = resolve(file.parent.name) if file.parent.name else None
    except KitError:
        pass
    info = RunInfo()
    written = find_written(file) if run_dir is None and file.is_file() else None
    if written is not None:
        run_dir = Path(written["run_dir"])
    if run_dir is None:
        guess = explicit or from_folder
        found = _find_run_dir(file.stem, guess.name if guess else None)
        if found is not None:
            run_dir = found
        elif from_folder is not None:
            info.name = file.stem  # submissions/<competition>/<run>.csv even when the run folder is elsewhere
    if run_dir is not None:
        run_dir = Path(run_dir)
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise KitError(f"{config_path} not found: pass the run folder that holds config.json, or leave --run out")
        config = _read_json(config_path)
        if not config:
            raise KitError(f"{config_path} is not a readable run config: pass another run folder, or leave --run out")
        from .run import RunDir  # here, not at the top: run imports torch, which submit and list never need

        info = RunInfo(
            name=RunDir(run_dir).name, run_dir=run_dir, config=config, recipe=recipe_summary(config.get("recipe"))
        )
        if written is not None:
            info.data_dir = Path(written["data_dir"]) if written.get("data_dir") else None
            info.sample = Path(written["sample"]) if written.get("sample") else None
    from_run = None
    if info.config.get("competition"):
        from_run = _competition(str(info.config["competition"]))
    if explicit and from_run and explicit.name != from_run.name:
        raise KitError(
            f"{file} comes from run {info.name} of {from_run.name}, but --competition says {explicit.name}: "
            "drop --competition or pick the right file"
        )
    comp = explicit or from_run or from_folder
    if comp is None:
        raise KitError(
            f"{file}: cannot tell which competition it is for (not under submissions/<competition>/ and no run found): "
            "pass --competition"
        )
    if info.run_dir is not None:
        from .run import calibration_of

        calibration = calibration_of(info.config, "best")  # the checkpoint a plain predict submits
        calibrated = calibration.get("val_metric") if calibration else None
        # the calibrated metric is what predict's submission reflects (its TTA choice and temperature)
        info.local_score = (
            calibrated if isinstance(calibrated, (int, float))
            else _validation_score(info.run_dir, comp, info.config.get("temperature"))
        )
    return comp, info

