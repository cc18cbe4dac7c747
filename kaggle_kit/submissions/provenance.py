"""The run folders on disk: where they are (the runs root), how each is described, and the `runs` listing.

`describe_run` finds the run that made a submission file and reads its recipe and validation score; `submit`
records them in the ledger, `report` and `experiment` summarise recipes with `recipe_summary`. The run is found
by the file's hash first: `predict` records every file it writes (`record_written`: hash, path, run folder, data
folder, sample) in `<submissions dir>/written.jsonl`, so a file written anywhere (`--out sub.csv`) leads back to
its run and its data. Files made elsewhere fall back to `submissions/<competition>/<run>.csv` and the run's
config.json under the runs root. `run_summary` says what one run folder holds (settings, epochs, validation
metric, Kaggle score): a row of `list_runs` (`kaggle-kit runs`) and of an experiment's results.csv.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..competitions.metrics import Metric
from ..competitions.registry import Competition, resolve
from ..core.errors import KitError
from ..core.json_files import read_json_object
from ..records.group_folder import FOLDS_FILE, FoldGroup, is_group
from ..records.run_config import CONFIG, RunConfig

# the runs root lives in run.py (below tracking, which needs it); imported from here too
from ..records.run_folder import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, RunDir, display_epoch, runs_root, stopped_early  # noqa: F401
from .ledger import append_json_line, default_submissions_dir, now_iso, read_json_lines

WRITTEN_NAME = "written.jsonl"  # beside the ledger: every file predict wrote, by hash
BLEND_SUFFIX = ".ensemble.json"  # beside a file `ensemble` wrote: its members, weights and held-out score
EXPERIMENT_FILE = "experiment.json"  # an experiment folder's record; the folder holds run folders


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
        "sha256": file_sha256(path),
        "path": _absolute(path),
        "run_dir": _absolute(run_dir),
        "competition": competition,
        "data_dir": _absolute(data_dir),
        "sample": _absolute(sample),
        "time": now_iso(),
    }
    try:
        append_json_line(written_index(), entry)
    except OSError as error:  # the file is written and valid; only `submit FILE` loses the way back to its run
        print(
            f"warning: cannot record {path} in {written_index()} ({error.strerror}): submit it with --run {run_dir}",
            file=sys.stderr,
        )


def _absolute(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path else None  # the index is read from any working folder


def find_written(path: Path) -> dict | None:
    """The newest record of a file with these very bytes whose run folder still exists, or None."""
    sha256 = file_sha256(path)
    for entry in reversed(read_json_lines(written_index())):
        folder = Path(str(entry.get("run_dir")))
        if entry.get("sha256") == sha256 and ((folder / CONFIG).is_file() or is_group(folder)):
            return entry
    return None


def _competition(competition: Competition | str) -> Competition:
    return competition if isinstance(competition, Competition) else resolve(competition)


@dataclass
class RunInfo:
    """What a submission file says about the run that made it."""

    name: str | None = None
    run_dir: Path | None = None
    config: RunConfig = field(default_factory=RunConfig)
    recipe: str | None = None  # short summary
    local_score: float | None = None  # validation score with the competition metric
    local_interval: dict | None = None  # its 95% bootstrap interval and n (competitions/bootstrap.Interval)
    data_dir: Path | None = None  # the data folder the file was predicted from, when recorded
    sample: Path | None = None  # the sample submission it was checked against, when recorded


def _find_run_dir(name: str, comp_name: str | None) -> Path | None:
    root = runs_root()
    candidates = [root / name] + ([root / comp_name / name] if comp_name else [])
    for candidate in candidates:
        if (candidate / CONFIG).is_file():
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

    from ..competitions.metrics import softmax

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


def blend_record_path(file: Path | str) -> Path:
    file = Path(file)
    return file.with_name(file.name + BLEND_SUFFIX)


def blend_record(file: Path) -> dict | None:
    """The record `ensemble` wrote beside this very file (same bytes), or None."""
    record = read_json_object(blend_record_path(file))
    if not record or not file.is_file() or record.get("sha256") != file_sha256(file):
        return None
    return record


def _describe_blend(file: Path, record: dict, explicit: Competition | None) -> tuple[Competition, RunInfo]:
    comp = resolve(record["competition"])
    if explicit and explicit.name != comp.name:
        raise KitError(f"{file} is a blend of {comp.name} members, but --competition says {explicit.name}")
    members = " + ".join(f"{m['name']} {m['weight']:.3f}" for m in record.get("members", []))
    info = RunInfo(
        name=f"blend:{file.stem}",
        recipe=f"blend ({record.get('weights')} weights): {members}",
        local_score=record.get("blend_score"),
        local_interval=record.get("blend_interval"),
        data_dir=Path(record["data_dir"]) if record.get("data_dir") else None,
        sample=Path(record["sample"]) if record.get("sample") else None,
    )
    return comp, info


def _group_info(group_dir: Path) -> RunInfo:
    """A fold group as the run of a submission: fold 1's settings, the OOF score as the local score, and the OOF
    temperature `predict GROUP` applied (fold 1's own TTA choice and temperature are not the group's)."""
    group = FoldGroup(group_dir)
    cv = group.cv() or {}
    typed = replace(
        RunConfig.from_dict(read_json_object(group.fold_dir(1) / CONFIG)), tta=None, temperature=cv.get("temperature")
    )
    summary = recipe_summary(typed.recipe_dict)
    return RunInfo(
        name=group.name,
        run_dir=group_dir,
        config=typed,
        recipe=f"{group.k}-fold CV {summary}" if summary else f"{group.k}-fold CV",
        local_score=cv.get("oof_metric"),
        local_interval=cv.get("oof_interval"),
    )


def describe_run(
    file: Path, competition: Competition | str | None = None, run_dir: Path | str | None = None
) -> tuple[Competition, RunInfo]:
    """The competition and run of a submission file: `submissions/<competition>/<run>.csv` and the run's config.json;
    a fold group's file describes the group (OOF score), an ensemble's its members and weights."""
    file = Path(file)
    blended = blend_record(file) if run_dir is None else None
    if blended is not None:
        return _describe_blend(file, blended, _competition(competition) if competition else None)
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
    if run_dir is not None and is_group(run_dir):
        info = _group_info(Path(run_dir))
        if written is not None:
            info.data_dir = Path(written["data_dir"]) if written.get("data_dir") else None
            info.sample = Path(written["sample"]) if written.get("sample") else None
        run_dir = None  # described: the group has no config.json of its own
    if run_dir is not None:
        run_dir = Path(run_dir)
        config_path = run_dir / CONFIG
        if not config_path.is_file():
            raise KitError(f"{config_path} not found: pass the run folder that holds config.json, or leave --run out")
        config = read_json_object(config_path)
        if not config:
            raise KitError(f"{config_path} is not a readable run config: pass another run folder, or leave --run out")
        typed = RunConfig.from_dict(config)
        info = RunInfo(
            name=RunDir(run_dir).name, run_dir=run_dir, config=typed, recipe=recipe_summary(typed.recipe_dict)
        )
        if written is not None:
            info.data_dir = Path(written["data_dir"]) if written.get("data_dir") else None
            info.sample = Path(written["sample"]) if written.get("sample") else None
    from_run = None
    if info.config.competition:
        from_run = _competition(info.config.competition)
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
    if info.run_dir is not None and not is_group(info.run_dir):
        calibration = info.config.calibration_of("best")  # the checkpoint a plain predict submits
        calibrated = calibration.get("val_metric") if calibration else None
        # the calibrated metric is what predict's submission reflects (its TTA choice and temperature)
        info.local_score = (
            calibrated
            if isinstance(calibrated, (int, float))
            else _validation_score(info.run_dir, comp, info.config.temperature)
        )
        info.local_interval = calibration.get("val_interval") if isinstance(calibrated, (int, float)) else None
    return comp, info


# --------------------------------------------------------------------------------------- one run


def best_of_history(history, metric: Metric) -> tuple[float | None, int | None]:
    """The best validation metric over the epochs (what best.pt holds) and its epoch."""
    values = [float(v) for v in history["val_metric"]] if len(history) else []
    best = metric.best(values)
    if best is None:
        return None, None
    return best, int(history["epoch"].iloc[values.index(best)])


def calibrated_with(calibration: Mapping[str, Any]) -> str | None:
    """Which checkpoint and configuration a calibrated figure is of, e.g. "best.pt epoch 3, TTA off, T=0.547"."""
    if not calibration.get("validated"):
        return None
    epoch = f" epoch {display_epoch(calibration['epoch'])}" if calibration.get("epoch") is not None else ""
    tta = "on" if calibration["tta"] else "off"
    return f"{calibration.get('checkpoint', 'best')}.pt{epoch}, TTA {tta}, T={calibration['temperature']:.3f}"


def settings_summary(recipe: Mapping[str, Any], calibration: Mapping[str, Any]) -> str:
    """The settings that decide a result beyond arch and recipe: weights, freezing, size, and what predict applies."""
    parts = ["pretrained" if recipe.get("pretrained") else "scratch"]
    if recipe.get("freeze"):
        after = recipe.get("unfreeze_after")
        parts.append("frozen" if after is None else f"frozen {after} epochs")
    else:
        parts.append("unfrozen")
    parts.append(f"{recipe.get('img_size', '?')}px")
    if calibration.get("validated"):
        parts.append(f"TTA {'on' if calibration['tta'] else 'off'} T={calibration['temperature']:.3f}")
    else:
        parts.append(f"TTA {recipe.get('tta', 'auto')} uncalibrated")
    return " ".join(parts)


def kaggle_records(ledger) -> dict[str, Any]:
    """The latest scored ledger record of each run folder (resolved path -> record)."""
    from .ledger import COMPLETE

    found = {}
    if ledger is None:
        return found
    for record in ledger.records():
        if record.run_dir and record.status == COMPLETE:
            found[str(Path(record.run_dir).resolve())] = record
    return found


def run_summary(path: Path, scored: Mapping[str, Any]) -> dict[str, Any] | None:
    """What one run folder says: settings, epochs, validation metric, Kaggle score; None if it has no config.
    A fold group: fold 1's settings, epochs and seconds summed over its folds (`fold_epochs`: each fold's), the
    OOF metric as validation."""
    if is_group(path):
        return _group_summary(path, scored)
    run = RunDir(path)
    if not run.file(CONFIG).is_file():
        return None
    config = run.read_config()
    if config.recipe_dict is None or config.competition is None:
        return None
    metric = resolve(config.competition).metric
    history = run.history()
    best, best_epoch = best_of_history(history, metric)
    final = float(history["val_metric"].iloc[-1]) if len(history) else None
    calibration = config.calibration_of("best") or {}  # best.pt: the checkpoint val_metric and a plain predict use
    record = scored.get(str(path.resolve()))
    recipe = config.recipe_dict
    planned = int(recipe.get("epochs", 0))
    return {
        "competition": config.competition,
        "arch": recipe.get("arch"),
        "recipe": recipe_summary(recipe),
        "epochs": len(history),
        "epochs_planned": planned,
        "best_epoch": best_epoch,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "val_metric": best,
        "val_metric_final": None if final is None or math.isnan(final) else final,
        "val_metric_calibrated": calibration.get("val_metric") if calibration.get("validated") else None,
        "val_interval": calibration.get("val_interval") if calibration.get("validated") else None,
        "calibrated_with": calibrated_with(calibration),
        "settings": settings_summary(recipe, calibration),
        "kaggle_public": record.public_score if record else None,
        "kaggle_private": record.private_score if record else None,
        "train_seconds": float(history["seconds"].sum()) if len(history) else 0.0,
        "finished": run.file("best.pt").is_file()
        and (
            len(history) >= planned
            or stopped_early(history["val_metric"].tolist(), recipe.get("early_stop_patience"), metric)
        ),
    }


def _group_summary(path: Path, scored: Mapping[str, Any]) -> dict[str, Any] | None:
    group = FoldGroup(path)
    k = group.k
    started = {f: run_summary(group.fold_dir(f), {}) for f in range(1, k + 1) if (group.fold_dir(f) / CONFIG).is_file()}
    folds = [summary for summary in started.values() if summary is not None]
    if not folds:
        return None
    cv = group.cv() or {}
    summary = dict(folds[0])
    record = scored.get(str(path.resolve()))
    finished = sum(1 for f in folds if f["finished"])
    summary.update(
        kind="group",
        recipe=f"{k}-fold CV {folds[0]['recipe']}",
        epochs=sum(f["epochs"] for f in folds),  # over all folds, as epochs_planned: what the group cost
        epochs_planned=k * folds[0]["epochs_planned"],
        fold_epochs=[started[f]["epochs"] if started.get(f) else 0 for f in range(1, k + 1)],
        best_epoch=None,
        val_metric=cv.get("oof_metric"),
        val_metric_final=cv.get("oof_metric"),
        val_metric_calibrated=cv.get("oof_metric"),
        val_interval=cv.get("oof_interval") or (cv.get("oof_fit") or {}).get("interval"),
        calibrated_with=_group_fit(cv),
        settings=f"{k} folds ({finished} finished), OOF"
        + (f" (folds {cv['fold_mean']:.4f} +- {cv['fold_std']:.4f})" if cv else " pending"),
        kaggle_public=record.public_score if record else None,
        kaggle_private=record.private_score if record else None,
        train_seconds=sum(f["train_seconds"] for f in folds),
        finished=bool(cv) and finished == k,
    )
    return summary


def _group_fit(cv: Mapping[str, Any]) -> str | None:
    """What a group's predict applies, fitted on its OOF predictions: one label's temperature, or a label set's,
    grade's or ranking's fit (thresholds, cut points), as cv.json records it."""
    if not cv:
        return None
    if "temperature" in cv:
        return f"OOF, T={cv['temperature']:.3f}"
    fit = cv.get("oof_fit") or {}
    return f"OOF, {fit['chosen'] if fit.get('used') else fit.get('default', 'no fit')}"


def epochs_text(summary: Mapping[str, Any]) -> str:
    """The epochs column a person reads: a run's `done/planned`; a fold group's per fold, `KxE/planned` when every
    fold ran E epochs (`5x8/8`), else each fold's count (`8,8,3,0,0/8`) - never the sum over folds."""
    per_fold = summary.get("fold_epochs")
    if not per_fold:
        return f"{summary['epochs']}/{summary['epochs_planned']}"
    planned = summary["epochs_planned"] // len(per_fold)
    if len(set(per_fold)) == 1:
        return f"{len(per_fold)}x{per_fold[0]}/{planned}"
    return f"{','.join(map(str, per_fold))}/{planned}"


# --------------------------------------------------------------------------------------- every run


DEFAULT_RUN_ROOTS = (DEFAULT_RUNS_DIR, Path("experiments"))  # train's runs, experiment's folders


def find_run_dirs(roots: Iterable[Path | str]) -> list[Path]:
    """Every run folder (a folder with config.json) under the roots; experiment folders are walked into."""
    found = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if FOLDS_FILE in filenames:  # a fold group: one row, its folds are its parts
                found.append(Path(dirpath))
                dirnames[:] = []
            elif CONFIG in filenames and EXPERIMENT_FILE not in filenames:
                found.append(Path(dirpath))
                dirnames[:] = []  # a run folder holds no other runs
    return found


def list_runs(
    roots: Iterable[Path | str] = DEFAULT_RUN_ROOTS,
    competition: str | None = None,
    ledger=None,
    on_damaged: Callable[[Path, str], None] | None = None,
) -> list[dict[str, Any]]:
    """One summary per run folder under `roots` (optionally one competition's), with its Kaggle score when scored.
    A folder whose config.json or history.csv cannot be read is left out and handed to `on_damaged` with why."""
    from .ledger import Ledger

    wanted = resolve(competition).name if competition else None
    scored = kaggle_records(ledger if ledger is not None else Ledger())
    runs = []
    for path in find_run_dirs(roots):
        try:
            summary = run_summary(path, scored)
        except (KitError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
            # one damaged folder (hand-edited, cut short by a full disk) must not hide every other run
            if on_damaged:
                on_damaged(path, " ".join(f"{type(error).__name__}: {error}".split())[:160])
            continue
        if summary is None or (wanted and summary["competition"] != wanted):
            continue
        summary["run_dir"] = str(path)
        runs.append(summary)
    return runs
