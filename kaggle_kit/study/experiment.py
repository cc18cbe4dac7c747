"""Running an experiment: every cell x seed of a plan (`plan.py`) trained into its run folder, then the report.

Each cell x seed trains into `<experiment>/<cell>/seed=<k>/`, where a cell is named by its values, e.g.
`aug=paper,schedule=cosine`; a plan with `folds` makes that folder a fold group, trained as `train --folds K`
trains one (with `--gpus`, one `train --resume GROUP --fold I` process per fold). A run folder whose history
covers every epoch and that holds best.pt is finished and skipped; one with a config.json but fewer epochs is
resumed from its last checkpoint, so rerunning the same command after a crash finishes the experiment
(`plan_runs.run_state` says which).

The experiment folder also holds `experiment.json` (what was asked: plan, seeds, command-line
overrides, the run list), `plan.toml` (the plan as run), `timings.json` (wall seconds of each run as
measured here) and the report (see `report.py`).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..competitions.registry import Competition, resolve
from ..core import invocation
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..core.json_files import read_json_object
from ..submissions.provenance import EXPERIMENT_FILE
from .gpu_runs import run_parallel
from .jobs import Clock, ExperimentResult, Jobs, Timings, emit
from .plan import (
    DAMAGED,
    DEFAULT_ROOT,
    PLAN_COPY,
    SUBMISSION_FILE,
    Plan,
    _relative,
    find_plan,
    load_plan,
)
from .plan_progress import PlanProgress
from .plan_runs import PlannedRun, check_plan_folds, plan_runs, prediction_is_current, run_state, train_group
from .report import write_report


def _write_experiment(
    folder: Path, plan: Plan, plan_text: str, runs: list[PlannedRun], seeds: int, epochs, overrides, data_dir
) -> None:
    existing = read_json_object(folder / EXPERIMENT_FILE, DAMAGED)
    if existing and (existing.get("plan"), existing.get("competition")) != (plan.name, plan.competition):
        raise KitError(
            f"{folder} holds experiment '{existing.get('plan')}' of {existing.get('competition')}, not '{plan.name}': "
            f"pass another --out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / PLAN_COPY, plan_text)
    record = {
        "plan": plan.name,
        "plan_file": str(plan.path) if plan.path else None,
        "competition": plan.competition,
        "seeds": seeds,
        "epochs": epochs,
        "overrides": overrides,
        "data_dir": str(data_dir) if data_dir else None,
        "command": invocation.command(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "runs": [
            {"cell": r.cell.name, "values": r.cell.values, "seed": r.seed, "path": _relative(r.path, folder)}
            for r in runs
        ],
    }
    atomic_write_text(folder / EXPERIMENT_FILE, json.dumps(record, indent=2, default=str))


# --------------------------------------------------------------------------------------- running


def _submitted_already(run: PlannedRun, sha256: str, ledger) -> str | None:
    """Why not to upload this very file of this run again: it is scored, waiting for a score, or maybe uploaded."""
    from ..submissions.ledger import COMPLETE, PENDING, UPLOADING

    path = str(run.path.resolve())
    for record in reversed(ledger.records()):
        if record.sha256 != sha256 or not record.run_dir or str(Path(record.run_dir).resolve()) != path:
            continue
        if record.status == COMPLETE:
            return f"already scored by Kaggle (submission {record.kaggle_ref}, public score {record.public_score})"
        if record.status == PENDING:
            return (
                f"submission {record.kaggle_ref} is waiting for its score: "
                f"see `kaggle-kit submissions {record.competition}`"
            )
        if record.status == UPLOADING:
            return (
                "an earlier upload may have reached Kaggle: "
                f"run `kaggle-kit submissions {record.competition}` to find it"
            )
    return None


def _submit_run(run: PlannedRun, plan: Plan, data_dir, ledger) -> tuple[float | None, str | None]:
    """Predict (unless the file is current) and upload one run: (public score, None), or (None, why it was not sent)."""
    from ..inference.predict import predict_run
    from ..kaggle.api import file_sha256, submit
    from ..submissions.provenance import recipe_summary
    from ..workflows.cross_validation import predict_group

    file = run.path / SUBMISSION_FILE
    if not prediction_is_current(run):
        try:
            predict = predict_group if run.folds else predict_run  # a group: its folds' averaged test logits
            predict(run.path, data_dir, out=file, device=run.recipe.device)
        except KitError as error:
            return None, f"prediction failed: {error}"  # this run's problem: later runs still upload
    why = _submitted_already(run, file_sha256(file), ledger)
    if why:
        return None, why
    summary = (f"{run.folds}-fold CV " if run.folds else "") + (recipe_summary(run.recipe.to_dict()) or run.recipe.name)
    message = f"{plan.name} {run.name} | {summary}"
    result = submit(file, plan.competition, message, data_dir=data_dir, run_dir=run.path.resolve(), ledger=ledger)
    return result.public_score, None


def run_experiment(
    plan: Plan | Path | str,
    data_dir: Path | str | None = None,
    out: Path | str | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
    submit: bool = False,
    gpus: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    ledger=None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    status_every_s: float = 60.0,
    track: list[str] | None = None,
    ray: str | None = None,
) -> ExperimentResult:
    """Train every cell x seed of `plan` (skipping finished runs, resuming partial ones), optionally predict
    and submit each, then write the report. `gpus` runs independent runs in parallel, one per GPU, each
    logging to its own file; every `status_every_s` a "progress" event carries each running run's latest line.
    `track` ("mlflow", "tensorboard") logs every run, under the plan's name (tracking.experiment_name).
    `ray` (a Ray cluster's address, or "auto") runs each of those processes as a Ray task instead.

    `on_event` receives plain dicts as runs start and end ({"event": "start"|"skip"|"done"|"failed"|...,
    "run", "index", "total", "eta_s", ...}); printing them is the caller's business.
    """
    from ..submissions.ledger import Ledger

    started = time.perf_counter()
    if not isinstance(plan, Plan):
        plan = load_plan(find_plan(str(plan)))
    plan_text = plan.path.read_text() if plan.path else ""
    folder = Path(out) if out else DEFAULT_ROOT / plan.name
    runs = plan_runs(plan, folder, seeds, epochs, overrides)
    comp, data_dir, states = _check_before_training(plan, runs, data_dir, track)
    cluster, gpus = _ray_slots(ray, gpus)  # Ray missing or no cluster: said before the experiment folder is written
    _write_experiment(folder, plan, plan_text, runs, seeds or plan.seeds, epochs, overrides or {}, data_dir)
    if submit:
        _check_credentials()
    ledger = ledger or Ledger()
    from ..training.tracking import check_kinds

    track = check_kinds(track)
    result = ExperimentResult(folder, plan.name, plan.competition, len(runs))
    timings = Timings(folder)
    to_train = [r for r in runs if states[r.name] in ("new", "partial")]
    jobs = Jobs(result, timings, Clock(len(runs), len(gpus) if gpus else 1), on_event)
    plan_progress = PlanProgress(runs, status_every_s, on_event)  # the whole plan's epochs and ETA
    _skip_finished(runs, states, jobs)
    after_training = _Submitter(plan, data_dir, ledger, result, on_event)

    try:
        if gpus:
            run_parallel(
                to_train,
                states,
                comp,
                data_dir,
                gpus,
                jobs,
                on_event,
                after_training if submit else None,
                folder,
                status_every_s,
                track,
                plan_progress,
                cluster,
            )
        else:
            _run_sequential(to_train, states, comp, data_dir, jobs, track, plan_progress)
            if submit and not result.interrupted:
                for run in runs:
                    if run.name not in result.failed:
                        after_training(run)
        if gpus and submit and not result.interrupted:
            for run in runs:
                if run.name in result.skipped:
                    after_training(run)
    finally:
        result.report = write_report(folder, ledger=ledger)
        result.seconds = time.perf_counter() - started
    return result


def _ray_slots(ray: str | None, gpus: list[str] | None) -> tuple[Any, list[str] | None]:
    """(connected Ray, a name for each run Ray can hold at once) with `ray`; (None, gpus) without it."""
    if ray is None:
        return None, gpus
    if gpus:
        raise KitError("--ray places the runs on the Ray cluster's GPUs itself: drop --gpus")
    from ..core import ray_jobs

    cluster = ray_jobs.connect(ray)
    return cluster, [f"Ray slot {n}" for n in range(1, ray_jobs.slots(cluster) + 1)]


def _check_before_training(plan: Plan, runs: list[PlannedRun], data_dir, track) -> tuple[Competition, Path, dict]:
    """(competition, data folder, each run's state), or the first reason the plan cannot run on this data."""
    from ..data.layout import open_layout

    comp = resolve(plan.competition)
    # the data is found (and unpacked once) before the first run, so a wrong --data-dir fails at once
    layout = open_layout(comp, data_dir)
    check_plan_folds(plan, runs, comp, layout)  # folds = K the data's smallest class cannot fill: refused now
    if track and any(run.folds for run in runs):
        raise KitError(f"--track does not log fold groups yet ({plan.path or plan.name} sets folds): drop --track")
    # refuses mixed settings or data before anything trains
    return comp, layout.root, {run.name: run_state(run, layout.fingerprint()) for run in runs}


def _check_credentials() -> None:
    from ..kaggle.api import credential_source

    if credential_source().kind == "none":  # fail now, not after hours of training
        raise KitError(
            "--submit needs Kaggle credentials and none were found: `kaggle-kit doctor` says how to set them up"
        )


def _skip_finished(runs: list[PlannedRun], states: dict[str, str], jobs: Jobs) -> None:
    for run in runs:
        if states[run.name] == "finished":
            jobs.skipped(run)
        elif states[run.name] == "damaged":
            jobs.failed(run, f"{run.path} ran every epoch but has no best.pt: delete that folder to retrain it")


class _Submitter:
    """Submits each finished run's prediction, one upload at a time (polite to Kaggle, and the ledger reads stay
    simple); the first failure stops the later uploads but not the training."""

    def __init__(self, plan: Plan, data_dir, ledger, result: ExperimentResult, on_event):
        self.plan, self.data_dir, self.ledger, self.result, self.on_event = plan, data_dir, ledger, result, on_event
        self.on = True
        self.lock = threading.Lock()

    def __call__(self, run: PlannedRun) -> None:
        result = self.result
        with self.lock:
            if not self.on:
                result.not_submitted[run.name] = "submitting stopped after an earlier failure"
                return
            try:
                score, why = _submit_run(run, self.plan, self.data_dir, self.ledger)
            except KitError as error:
                # a daily limit or an outage fails every later upload too: keep training, stop uploading
                self.on = False
                result.not_submitted[run.name] = str(error)
                emit(self.on_event, event="submit-failed", run=run.name, error=str(error))
                return
            if why:
                result.not_submitted[run.name] = why
                return
            result.submitted[run.name] = score
            emit(self.on_event, event="submitted", run=run.name, public_score=score)


def _train_here(run: PlannedRun, resuming: bool, comp: Competition, data_dir, tracker):
    """Train (or resume) one planned run in this process, then what `kaggle-kit train` does after training, so both
    ways of running leave the same folder."""
    from .. import training
    from ..inference.analysis import analyze_finished_run
    from ..inference.calibration import calibrate_after_training

    if run.folds:
        return train_group(run, comp, data_dir)
    if resuming:
        trained = training.resume(run.path, data_dir, tracker=tracker)
    else:
        trained = training.train(comp, data_dir, run.recipe, out=run.path, tracker=tracker)
    if calibrate_after_training(trained, data_dir, device=run.recipe.device) is not None:
        analyze_finished_run(run.path, data_dir)
    return trained


def _run_sequential(
    runs,
    states,
    comp: Competition,
    data_dir,
    jobs: Jobs,
    track: list[str] | None = None,
    plan_progress: PlanProgress | None = None,
) -> None:
    from ..training.tracking import RunTracking

    for run in runs:
        resuming = states[run.name] == "partial"
        jobs.start(run, resuming)
        began = time.perf_counter()
        tracker = RunTracking(track or [], on_epoch=lambda row: plan_progress and plan_progress.tell())
        try:
            trained = _train_here(run, resuming, comp, data_dir, tracker)
            if tracker:
                tracker.finish("KILLED" if trained.interrupted else "FINISHED")
        except KitError as error:
            if tracker:
                tracker.finish("FAILED")
            jobs.ended(run, time.perf_counter() - began)
            jobs.failed(run, str(error))
            continue
        except KeyboardInterrupt:
            trained = None
            if tracker:
                tracker.finish("KILLED")
        seconds = time.perf_counter() - began
        jobs.ended(run, seconds)
        if trained is None or trained.interrupted:
            jobs.interrupted(run)
            return
        jobs.done(run, resuming, seconds, best_metric=trained.best_metric)
