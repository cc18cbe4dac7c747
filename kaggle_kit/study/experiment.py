"""Running an experiment: every cell x seed of a plan (`plan.py`) trained into its run folder, then the report.

Each cell x seed trains into `<experiment>/<cell>/seed=<k>/`, where a cell is named by its values, e.g.
`aug=paper,schedule=cosine`; a plan with `folds` makes that folder a fold group, trained as `train --folds K`
trains one (with `--gpus`, one `train --resume GROUP --fold I` process per fold). A run folder whose history
covers every epoch and that holds best.pt is finished and skipped; one with a config.json but fewer epochs is
resumed from its last checkpoint, so rerunning the same command after a crash finishes the experiment
(`plan.run_state` says which).

The experiment folder also holds `experiment.json` (what was asked: plan, seeds, command-line
overrides, the run list), `plan.toml` (the plan as run), `timings.json` (wall seconds of each run as
measured here) and the report (see `report.py`).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..competitions.registry import Competition, resolve
from ..config.flags import Unsayable, recipe_to_argv
from ..core import invocation
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.group_folder import CV_FILE, FoldGroup, is_group
from ..submissions.provenance import EXPERIMENT_FILE
from .plan import (
    DEFAULT_ROOT,
    PLAN_COPY,
    SUBMISSION_FILE,
    TIMINGS_FILE,
    Plan,
    PlannedRun,
    _read_json,
    _relative,
    check_plan_folds,
    find_plan,
    load_plan,
    plan_runs,
    read_timings,
    run_state,
)
from .plan_progress import PlanProgress
from .report import write_report


def _write_experiment(
    folder: Path, plan: Plan, plan_text: str, runs: list[PlannedRun], seeds: int, epochs, overrides, data_dir
) -> None:
    existing = _read_json(folder / EXPERIMENT_FILE)
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


class _Timings:
    """Wall seconds per run, added to across sessions (a resumed run counts its earlier session too)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.Lock()

    def add(self, run: PlannedRun, seconds: float) -> None:
        with self.lock:
            timings = read_timings(self.folder)
            key = _relative(run.path, self.folder)
            timings[key] = round(timings.get(key, 0.0) + seconds, 3)
            atomic_write_text(self.folder / TIMINGS_FILE, json.dumps(timings, indent=2, sort_keys=True))


# --------------------------------------------------------------------------------------- running


@dataclass
class ExperimentResult:
    folder: Path
    plan: str
    competition: str
    runs: int
    trained: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already finished: not trained again
    failed: dict[str, str] = field(default_factory=dict)  # run -> the error
    submitted: dict[str, float | None] = field(default_factory=dict)  # run -> Kaggle public score
    not_submitted: dict[str, str] = field(default_factory=dict)  # run -> why
    interrupted: bool = False
    seconds: float = 0.0
    report: Any = None  # report.ReportResult


def _event(on_event, **fields) -> None:
    if on_event is not None:
        on_event(fields)


class _Clock:
    """Cell k/n with an ETA from the runs trained so far (skipped ones take no time, so they are not counted)."""

    def __init__(self, total: int, parallel: int):
        self.total, self.parallel = total, max(parallel, 1)
        self.started = time.perf_counter()
        self.done = 0
        self.trained_seconds: list[float] = []
        self.lock = threading.Lock()

    def finish(self, seconds: float | None) -> dict[str, Any]:
        with self.lock:
            self.done += 1
            if seconds is not None:
                self.trained_seconds.append(seconds)
            return {
                "index": self.done,
                "total": self.total,
                "elapsed_s": time.perf_counter() - self.started,
                "eta_s": self.eta(),
            }

    def eta(self) -> float | None:
        if not self.trained_seconds:
            return None
        mean = sum(self.trained_seconds) / len(self.trained_seconds)
        return mean * (self.total - self.done) / self.parallel


class _Jobs:
    """The one owner of a run's bookkeeping, trained in this process or in its own on a GPU: the start, done, failed
    and interrupted events, the timings and the result's lists (thread-safe: several GPUs finish at once)."""

    def __init__(self, result: ExperimentResult, timings: _Timings, clock: _Clock, on_event):
        self.result, self.timings, self.clock, self.on_event = result, timings, clock, on_event
        self.lock = threading.Lock()

    def start(self, run: PlannedRun, resuming: bool, **where) -> None:
        _event(
            self.on_event,
            event="start",
            run=run.name,
            resume=resuming,
            **where,
            index=self.clock.done + 1,
            total=self.clock.total,
            eta_s=self.clock.eta(),
        )

    def skipped(self, run: PlannedRun) -> None:
        self.result.skipped.append(run.name)
        _event(self.on_event, event="skip", run=run.name, **self.clock.finish(None))

    def failed(self, run: PlannedRun, why: str) -> None:
        with self.lock:
            self.result.failed[run.name] = why
            _event(self.on_event, event="failed", run=run.name, error=why, **self.clock.finish(None))

    def interrupted(self, run: PlannedRun | None = None) -> None:
        """Stopped by Ctrl-C; said of `run` when it was the one running (not when the user stopped the waiting)."""
        with self.lock:
            self.result.interrupted = True
            if run is not None:
                _event(self.on_event, event="interrupted", run=run.name)

    def done(self, run: PlannedRun, resuming: bool, seconds: float, **extra) -> None:
        with self.lock:
            (self.result.resumed if resuming else self.result.trained).append(run.name)
            _event(self.on_event, event="done", run=run.name, seconds=seconds, **extra, **self.clock.finish(seconds))

    def ended(self, run: PlannedRun, seconds: float) -> None:
        """Wall seconds of one attempt, counted whatever its outcome."""
        self.timings.add(run, seconds)


def _prediction_is_current(run: PlannedRun) -> bool:
    # the file is a pure function of best.pt (a group: its folds, summed up in cv.json) and the data: reuse it
    # unless that is newer
    file, best = run.path / SUBMISSION_FILE, run.path / (CV_FILE if run.folds else "best.pt")
    return file.is_file() and best.is_file() and file.stat().st_mtime >= best.stat().st_mtime


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
    if not _prediction_is_current(run):
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
) -> ExperimentResult:
    """Train every cell x seed of `plan` (skipping finished runs, resuming partial ones), optionally predict
    and submit each, then write the report. `gpus` runs independent runs in parallel, one per GPU, each
    logging to its own file; every `status_every_s` a "progress" event carries each running run's latest line.
    `track` ("mlflow", "tensorboard") logs every run, under the plan's name (tracking.experiment_name).

    `on_event` receives plain dicts as runs start and end ({"event": "start"|"skip"|"done"|"failed"|...,
    "run", "index", "total", "eta_s", ...}); printing them is the caller's business.
    """
    from ..data.layout import open_layout
    from ..submissions.ledger import Ledger

    started = time.perf_counter()
    if not isinstance(plan, Plan):
        plan = load_plan(find_plan(str(plan)))
    plan_text = plan.path.read_text() if plan.path else ""
    folder = Path(out) if out else DEFAULT_ROOT / plan.name
    runs = plan_runs(plan, folder, seeds, epochs, overrides)
    comp = resolve(plan.competition)
    # the data is found (and unpacked once) before the first run, so a wrong --data-dir fails at once
    layout = open_layout(comp, data_dir)
    data_dir = layout.root
    check_plan_folds(plan, runs, comp, layout)  # folds = K the data's smallest class cannot fill: refused now
    if track and any(run.folds for run in runs):
        raise KitError(f"--track does not log fold groups yet ({plan.path or plan.name} sets folds): drop --track")
    # refuses mixed settings or data before anything trains
    states = {run.name: run_state(run, layout.fingerprint()) for run in runs}
    _write_experiment(folder, plan, plan_text, runs, seeds or plan.seeds, epochs, overrides or {}, data_dir)
    if submit:
        from ..kaggle.api import credential_source

        if credential_source().kind == "none":  # fail now, not after hours of training
            raise KitError(
                "--submit needs Kaggle credentials and none were found: `kaggle-kit doctor` says how to set them up"
            )
    ledger = ledger or Ledger()
    from ..training.tracking import check_kinds

    track = check_kinds(track)
    result = ExperimentResult(folder, plan.name, plan.competition, len(runs))
    timings = _Timings(folder)
    to_train = [r for r in runs if states[r.name] in ("new", "partial")]
    jobs = _Jobs(result, timings, _Clock(len(runs), len(gpus) if gpus else 1), on_event)
    plan_progress = PlanProgress(runs, status_every_s, on_event)  # the whole plan's epochs and ETA
    for run in runs:
        if states[run.name] == "finished":
            jobs.skipped(run)
        elif states[run.name] == "damaged":
            jobs.failed(run, f"{run.path} ran every epoch but has no best.pt: delete that folder to retrain it")
    submitting = {"on": submit}
    submit_lock = threading.Lock()

    def after_training(run: PlannedRun) -> None:
        with submit_lock:  # one upload at a time: polite to Kaggle, and the ledger reads stay simple
            if not submitting["on"]:
                result.not_submitted[run.name] = "submitting stopped after an earlier failure"
                return
            try:
                score, why = _submit_run(run, plan, data_dir, ledger)
            except KitError as error:
                # a daily limit or an outage fails every later upload too: keep training, stop uploading
                submitting["on"] = False
                result.not_submitted[run.name] = str(error)
                _event(on_event, event="submit-failed", run=run.name, error=str(error))
                return
            if why:
                result.not_submitted[run.name] = why
                return
            result.submitted[run.name] = score
            _event(on_event, event="submitted", run=run.name, public_score=score)

    try:
        if gpus:
            _run_parallel(
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


def _run_sequential(
    runs,
    states,
    comp: Competition,
    data_dir,
    jobs: _Jobs,
    track: list[str] | None = None,
    plan_progress: PlanProgress | None = None,
) -> None:
    from .. import training
    from ..inference.analysis import analyze_finished_run
    from ..inference.calibration import calibrate_after_training
    from ..training.tracking import RunTracking

    for run in runs:
        resuming = states[run.name] == "partial"
        jobs.start(run, resuming)
        began = time.perf_counter()
        tracker = RunTracking(track or [], on_epoch=lambda row: plan_progress and plan_progress.tell())
        try:
            if run.folds:
                trained = _train_group(run, comp, data_dir)
            elif resuming:
                trained = training.resume(run.path, data_dir, tracker=tracker)
            else:
                trained = training.train(comp, data_dir, run.recipe, out=run.path, tracker=tracker)
            # what `kaggle-kit train` does after training, so both ways of running leave the same folder
            if not run.folds and calibrate_after_training(trained, data_dir, device=run.recipe.device) is not None:
                analyze_finished_run(run.path, data_dir)
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


# --------------------------------------------------------------------------------------- fold groups


@dataclass
class GroupTrained:
    """A planned fold group after `_train_group`, read as a run's training result."""

    interrupted: bool
    best_metric: float | None  # the OOF metric, once every fold has finished


def recipe_changes(run: PlannedRun, comp: Competition) -> dict[str, Any]:
    """The fields of `run`'s recipe that differ from its named base recipe: what `train` flags or folds.json say."""
    base = comp.recipe(run.recipe.name)
    return {key: value for key, value in run.recipe.to_dict().items() if key != "name" and value != getattr(base, key)}


def planned_group(run: PlannedRun, comp: Competition, data_dir) -> FoldGroup:
    """The run's fold group: folds.json written as `train --folds K --out` writes it, unless the group exists."""
    from ..workflows.cross_validation import plan_group

    if is_group(run.path):
        return FoldGroup(run.path)
    changes = recipe_changes(run, comp)
    unset = next((key for key, value in changes.items() if value is None), None)
    if unset:  # folds.json records the flags given, and a flag cannot say none
        raise KitError(
            f"run {run.name} sets {unset}=none, which a fold group's settings cannot record: set it in the base "
            "recipe, or drop `folds` from the plan"
        )
    group, _ = plan_group(comp, data_dir, run.recipe.name, run.path, run.folds, **changes)
    return group


def _train_group(run: PlannedRun, comp: Competition, data_dir) -> GroupTrained:
    """The planned group made (or found), its unfinished folds trained or resumed one after another, then, with
    every fold finished, its OOF predictions and CV summary: what `train --folds K --out` does."""
    from ..workflows.cross_validation import finish_group, train_folds

    group = planned_group(run, comp, data_dir)
    result = train_folds(group, None, data_dir)
    if result.interrupted is not None:
        return GroupTrained(True, None)
    summary = group.cv() if not result.trained else None  # nothing new: the stored OOF and CV stand
    summary = summary or finish_group(group, data_dir, device=run.recipe.device)
    return GroupTrained(False, summary["oof_metric"] if summary else None)


# --------------------------------------------------------------------------------------- on several GPUs


def train_argv(run: PlannedRun, comp: Competition, data_dir, resume: bool) -> list[str]:
    """`kaggle-kit train` arguments that train `run` exactly: every field that differs from the base recipe."""
    if resume:
        return ["train", "--resume", str(run.path), "--data-dir", str(data_dir)]
    argv = ["train", comp.name, "--recipe", run.recipe.name, "--out", str(run.path), "--data-dir", str(data_dir)]
    changed = recipe_changes(run, comp)
    try:
        return argv + recipe_to_argv(changed)
    except Unsayable as error:
        raise KitError(
            f"run {run.name} sets {error.field}=none, which `kaggle-kit train` flags cannot express: "
            "run this plan without --gpus"
        ) from None


def run_log(folder: Path, run: PlannedRun, fold: int | None = None) -> Path:
    """Where `--gpus` writes a run's output (its training, then its prediction), a group's fold its own: runs side
    by side would interleave their lines in one terminal."""
    suffix = f".fold-{fold}" if fold else ""
    return Path(folder) / "logs" / f"{run.path.parent.name}.{run.path.name}{suffix}.log"


@dataclass
class _Process:
    """One `kaggle-kit` process of `--gpus`: a planned run, one fold of a planned group, or a group's OOF and CV."""

    run: PlannedRun
    argv: list[str]
    log: Path
    fold: int | None = None

    @property
    def name(self) -> str:
        return self.run.name if self.fold is None else f"{self.run.name} fold {self.fold}/{self.run.folds}"


def _processes(run: PlannedRun, comp: Competition, data_dir, state: str, folder: Path, tracked) -> list[_Process]:
    """What trains `run`: one `kaggle-kit train`; a fold group one `train --resume GROUP --fold I` per unfinished
    fold (folds.json written here first, so every fold reads one split), or, every fold done, the OOF and CV."""
    if not run.folds:
        return [_Process(run, train_argv(run, comp, data_dir, state == "partial") + tracked, run_log(folder, run))]
    from ..workflows.cross_validation import unfinished_folds

    group = planned_group(run, comp, data_dir)
    folds = unfinished_folds(group)
    if not folds:
        return [_Process(run, _group_argv(run, data_dir), run_log(folder, run))]
    return [_Process(run, _group_argv(run, data_dir, f), run_log(folder, run, f), f) for f in folds]


def _group_argv(run: PlannedRun, data_dir, fold: int | None = None) -> list[str]:
    """`train --resume GROUP` (with `--fold I`: that fold alone); with every fold finished it writes the OOF and CV."""
    return ["train", "--resume", str(run.path), *(["--fold", str(fold)] if fold else []), "--data-dir", str(data_dir)]


def _run_parallel(
    runs,
    states,
    comp: Competition,
    data_dir,
    gpus: list[str],
    jobs: _Jobs,
    on_event,
    after_training,
    folder: Path,
    status_every_s: float = 60.0,
    track: list[str] | None = None,
    plan_progress: PlanProgress | None = None,
) -> None:
    """One `kaggle-kit` process per GPU at a time; each GPU takes the next process as soon as it is free (a fold
    group's folds are processes of their own, so they spread over the GPUs too; the group is finished once all
    its folds are). Their output goes to their logs, so the terminal hears from each one every `status_every_s`."""
    from ..core.launch import how_it_ended, last_line, run_on_gpus

    tracked = [arg for kind in track or [] for arg in ("--track", kind)]
    planned = {run.name: _processes(run, comp, data_dir, states[run.name], folder, tracked) for run in runs}
    waiting: queue.Queue = queue.Queue()
    for run in runs:
        for process in planned[run.name]:
            waiting.put(process)
    left = {name: len(processes) for name, processes in planned.items()}
    failures: dict[str, str] = {}  # run -> why its first failed process failed
    spent: dict[str, float] = {}  # run -> seconds of its processes
    lock = threading.Lock()
    stop = threading.Event()
    running: dict[str, tuple[str, Path]] = {}  # process name -> (its GPU, its log), while it runs

    def run_process(process: _Process, gpu: str) -> int:
        running[process.name] = (gpu, process.log)
        try:
            (code,) = run_on_gpus([process.argv], [gpu], logs=[process.log])
        finally:
            running.pop(process.name, None)
        return code

    def finish(run: PlannedRun, resuming: bool, gpu: str) -> None:
        """The run's last process has ended: a group still without its OOF gets it (fold processes ending together
        may each have seen the other unfinished), then the run is done or failed, and maybe submitted."""
        if run.folds and run.name not in failures and run_state(run) == "partial":
            process = _Process(run, _group_argv(run, data_dir), run_log(folder, run))
            code = run_process(process, gpu)
            if code != 0:
                failures[run.name] = f"`kaggle-kit train --resume ...` {how_it_ended(code, process.log)}"
        if run.name not in failures and run_state(run) != "finished":
            failures[run.name] = f"`kaggle-kit {' '.join(planned[run.name][0].argv[:2])} ...` exited with code 0 but "
            failures[run.name] += "the run is not finished"
        if run.name in failures:
            jobs.failed(run, failures[run.name])
            return
        jobs.done(run, resuming, spent[run.name], gpu=gpu)
        if after_training is not None:
            if not _prediction_is_current(run):
                # predicted in its own process on this GPU, like the training; only the upload happens here
                out = str(run.path / SUBMISSION_FILE)
                predict = ["predict", str(run.path), "--data-dir", str(data_dir), "--out", out]
                run_on_gpus([predict], [gpu], logs=[run_log(folder, run)])
            after_training(run)

    def worker(gpu: str) -> None:
        while not stop.is_set():
            try:
                process = waiting.get_nowait()
            except queue.Empty:
                return
            run = process.run
            resuming = states[run.name] == "partial"
            fold = {"fold": f"{process.fold}/{run.folds}"} if process.fold else {}
            jobs.start(run, resuming, gpu=gpu, log=str(process.log), **fold)
            began = time.perf_counter()
            code = run_process(process, gpu)
            seconds = time.perf_counter() - began
            jobs.ended(run, seconds)
            if code == 130:
                stop.set()
                jobs.interrupted(run)
                return
            with lock:
                spent[run.name] = spent.get(run.name, 0.0) + seconds
                if code != 0 and run.name not in failures:
                    which = f" (fold {process.fold})" if process.fold else ""
                    failures[run.name] = (
                        f"`kaggle-kit {' '.join(process.argv[:2])} ...`{which} {how_it_ended(code, process.log)}; "
                        f"whole log: {process.log}"
                    )
                left[run.name] -= 1
                last = left[run.name] == 0
            if last:
                finish(run, resuming, gpu)

    threads = [threading.Thread(target=worker, args=(gpu,), name=f"gpu-{gpu}", daemon=True) for gpu in gpus]
    for thread in threads:
        thread.start()
    told = time.perf_counter()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=min(0.5, status_every_s))  # short joins keep Ctrl-C deliverable to the main thread
                if time.perf_counter() - told >= status_every_s:
                    told = time.perf_counter()
                    for name, (gpu, log) in list(running.items()):
                        _event(on_event, event="progress", run=name, gpu=gpu, line=last_line(log) or "starting")
                    if plan_progress:
                        plan_progress.tell(force=True)
    except KeyboardInterrupt:
        stop.set()
        jobs.interrupted()
        for thread in threads:
            thread.join()
