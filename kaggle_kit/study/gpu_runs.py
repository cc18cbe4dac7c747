"""`experiment --gpus 0,1,...`: one `kaggle-kit` process per GPU at a time, each run (or fold of a planned group) in
its own process with its own log, the next taken as soon as a GPU is free. `experiment --ray ADDRESS`: the same
processes, each a Ray task (core.ray_jobs), as many at once as the cluster has room for."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..competitions.registry import Competition
from ..config.flags import Unsayable, recipe_to_argv
from ..core.errors import KitError
from .jobs import Jobs, emit
from .plan import SUBMISSION_FILE
from .plan_progress import PlanProgress
from .plan_runs import PlannedRun, planned_group, prediction_is_current, recipe_changes, run_state


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
    resume: list[str] | None = None  # what continues it from run/last.pt, where argv would not (a Ray retry)

    @property
    def name(self) -> str:
        return self.run.name if self.fold is None else f"{self.run.name} fold {self.fold}/{self.run.folds}"


def _processes(run: PlannedRun, comp: Competition, data_dir, state: str, folder: Path, tracked) -> list[_Process]:
    """What trains `run`: one `kaggle-kit train`; a fold group one `train --resume GROUP --fold I` per unfinished
    fold (folds.json written here first, so every fold reads one split), or, every fold done, the OOF and CV."""
    if not run.folds:
        argv, resume = train_argv(run, comp, data_dir, state == "partial"), train_argv(run, comp, data_dir, True)
        return [_Process(run, argv + tracked, run_log(folder, run), resume=resume + tracked)]
    from ..workflows.cross_validation import unfinished_folds

    group = planned_group(run, comp, data_dir)
    folds = unfinished_folds(group)
    if not folds:
        return [_Process(run, _group_argv(run, data_dir), run_log(folder, run))]
    return [_Process(run, _group_argv(run, data_dir, f), run_log(folder, run, f), f) for f in folds]


def _group_argv(run: PlannedRun, data_dir, fold: int | None = None) -> list[str]:
    """`train --resume GROUP` (with `--fold I`: that fold alone); with every fold finished it writes the OOF and CV."""
    return ["train", "--resume", str(run.path), *(["--fold", str(fold)] if fold else []), "--data-dir", str(data_dir)]


def run_parallel(
    runs,
    states,
    comp: Competition,
    data_dir,
    gpus: list[str],
    jobs: Jobs,
    on_event,
    after_training,
    folder: Path,
    status_every_s: float = 60.0,
    track: list[str] | None = None,
    plan_progress: PlanProgress | None = None,
    ray=None,
) -> None:
    """One `kaggle-kit` process per GPU at a time; each GPU takes the next process as soon as it is free (a fold
        group's folds are processes of their own, so they spread over the GPUs too; the group is finished once all
        its folds are). Their output goes to their logs, so the terminal hears from each one every `status_every_s`.
    With `ray` (a connected Ray module) the `gpus` are slots and each process is a Ray task (placed by Ray)."""
    tracked = [arg for kind in track or [] for arg in ("--track", kind)]
    planned = {run.name: _processes(run, comp, data_dir, states[run.name], folder, tracked) for run in runs}
    pool = _Pool(planned, states, jobs, after_training, folder, data_dir, ray)
    for run in runs:
        for process in planned[run.name]:
            pool.waiting.put(process)
    threads = [threading.Thread(target=pool.worker, args=(gpu,), name=f"gpu-{gpu}", daemon=True) for gpu in gpus]
    for thread in threads:
        thread.start()
    try:
        _wait(threads, pool, on_event, status_every_s, plan_progress)
    except KeyboardInterrupt:
        pool.stop.set()
        jobs.interrupted()
        for thread in threads:
            thread.join()


def _wait(threads: list[threading.Thread], pool: _Pool, on_event, status_every_s: float, plan_progress) -> None:
    """Until every GPU's thread ends, each running process's latest log line as a "progress" event now and then."""
    from ..core.launch import last_line

    told = time.perf_counter()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=min(0.5, status_every_s))  # short joins keep Ctrl-C deliverable to the main thread
            if time.perf_counter() - told >= status_every_s:
                told = time.perf_counter()
                for name, (gpu, log) in list(pool.running.items()):
                    emit(on_event, event="progress", run=name, gpu=gpu, line=last_line(log) or "starting")
                if plan_progress:
                    plan_progress.tell(force=True)


class _Pool:
    """The processes waiting for a GPU, and what the GPUs' worker threads share about the runs they belong to."""

    def __init__(self, planned: dict[str, list[_Process]], states, jobs: Jobs, after_training, folder, data_dir, ray):
        self.planned, self.states, self.jobs, self.after_training = planned, states, jobs, after_training
        self.folder, self.data_dir, self.ray = folder, data_dir, ray
        self.waiting: queue.Queue = queue.Queue()
        self.left = {name: len(processes) for name, processes in planned.items()}
        self.failures: dict[str, str] = {}  # run -> why its first failed process failed
        self.spent: dict[str, float] = {}  # run -> seconds of its processes
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.running: dict[str, tuple[str, Path]] = {}  # process name -> (its GPU, its log), while it runs

    def run_process(self, process: _Process, gpu: str) -> int:
        self.running[process.name] = (gpu, process.log)
        try:
            return self.execute(process.argv, process.log, gpu, process.resume, process.run.path)
        finally:
            self.running.pop(process.name, None)

    def execute(self, argv: list[str], log: Path, gpu: str, resume=None, run_dir=None) -> int:
        """One `kaggle-kit` process on this GPU, or as a Ray task (retried from run_dir/last.pt if it dies)."""
        if self.ray is None:
            from ..core.launch import run_on_gpus

            return run_on_gpus([argv], [gpu], logs=[log])[0]
        from ..core.ray_jobs import Job, job_env, run_on_ray

        return run_on_ray(self.ray, [Job(argv, log, resume, run_dir, job_env())])[0]

    def finish(self, run: PlannedRun, resuming: bool, gpu: str) -> None:
        """The run's last process has ended: a group still without its OOF gets it (fold processes ending together
        may each have seen the other unfinished), then the run is done or failed, and maybe submitted."""
        from ..core.launch import how_it_ended

        failures, data_dir, folder = self.failures, self.data_dir, self.folder
        if run.folds and run.name not in failures and run_state(run) == "partial":
            process = _Process(run, _group_argv(run, data_dir), run_log(folder, run))
            code = self.run_process(process, gpu)
            if code != 0:
                failures[run.name] = f"`kaggle-kit train --resume ...` {how_it_ended(code, process.log)}"
        if run.name not in failures and run_state(run) != "finished":
            failures[run.name] = f"`kaggle-kit {' '.join(self.planned[run.name][0].argv[:2])} ...` exited with code 0 "
            failures[run.name] += "but the run is not finished"
        if run.name in failures:
            self.jobs.failed(run, failures[run.name])
            return
        self.jobs.done(run, resuming, self.spent[run.name], gpu=gpu)
        if self.after_training is not None:
            if not prediction_is_current(run):
                # predicted in its own process on this GPU, like the training; only the upload happens here
                out = str(run.path / SUBMISSION_FILE)
                predict = ["predict", str(run.path), "--data-dir", str(data_dir), "--out", out]
                self.execute(predict, run_log(folder, run), gpu)
            self.after_training(run)

    def worker(self, gpu: str) -> None:
        from ..core.launch import how_it_ended

        while not self.stop.is_set():
            try:
                process = self.waiting.get_nowait()
            except queue.Empty:
                return
            run = process.run
            resuming = self.states[run.name] == "partial"
            fold = {"fold": f"{process.fold}/{run.folds}"} if process.fold else {}
            self.jobs.start(run, resuming, gpu=gpu, log=str(process.log), **fold)
            began = time.perf_counter()
            code = self.run_process(process, gpu)
            seconds = time.perf_counter() - began
            self.jobs.ended(run, seconds)
            if code == 130:
                self.stop.set()
                self.jobs.interrupted(run)
                return
            with self.lock:
                self.spent[run.name] = self.spent.get(run.name, 0.0) + seconds
                if code != 0 and run.name not in self.failures:
                    which = f" (fold {process.fold})" if process.fold else ""
                    self.failures[run.name] = (
                        f"`kaggle-kit {' '.join(process.argv[:2])} ...`{which} {how_it_ended(code, process.log)}; "
                        f"whole log: {process.log}"
                    )
                self.left[run.name] -= 1
                last = self.left[run.name] == 0
            if last:
                self.finish(run, resuming, gpu)
