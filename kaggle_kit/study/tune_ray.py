"""`kaggle-kit tune --ray ADDRESS`: each trial a Ray task, as many at once as the cluster has room for.

The driver holds the study's one sampler: it asks Optuna for each trial and draws its parameters (so parallel
trials never share a seed's draws), then hands the trial's id to a Ray task. The task opens the same storage (the
journal file in the study folder on a shared filesystem, or the database), picks the trial up by id (Optuna's
`suggest` gives back the drawn values), trains it with the pruning hook (the pruner reads every trial's epochs
from the storage) and returns the outcome; the driver tells Optuna. A task whose process dies is retried by Ray
(`max_retries`) and the trial resumes its run folder's last.pt (tune_trial).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from ..core import faults, ray_jobs
from ..core.errors import KitError
from .tune_plan import StudyPlan


def run_trial_task(plan: StudyPlan, storage_url, heartbeat_s: int, pruner, trial_id: int, threads: int, cwd, track):
    """In a Ray task: the trial `trial_id` trained, its output in STUDY/logs/trial-NNN.log; ("complete", value,
    None), ("pruned", None, why) or ("failed", None, the error)."""
    import optuna
    import torch

    from ..competitions.registry import resolve
    from . import tune_storage
    from .tune_trial import objective

    torch.set_num_threads(threads)  # as the driver's process would train it
    os.chdir(cwd)  # where the driver's relative paths point (a worker runs one task at a time)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = tune_storage.open_storage(storage_url, plan.path, heartbeat_s)
    study = optuna.load_study(study_name=plan.study, storage=storage, pruner=pruner)
    trial = optuna.trial.Trial(study, trial_id)
    log = trial_log(plan.path, trial.number)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            return "complete", objective(plan, resolve(plan.competition), None, track)(trial), None
        except optuna.TrialPruned as pruned:
            return "pruned", None, str(pruned)
        except KitError as error:
            return "failed", None, str(error).splitlines()[0]


def run_study_on_ray(
    plan: StudyPlan,
    study,
    address: str,
    trials: int | None,
    timeout: float | None,
    storage_url,
    heartbeat_s: int,
    track: tuple[str, ...],
    said,
    budget_used,
) -> None:
    """Trials as Ray tasks until `trials` (counted across every worker of the study by `budget_used(study)`, as
    `run_study`'s cap), `timeout` seconds (no trial starts after it) or Ctrl-C (the running tasks are cancelled,
    their trials failed). `said(study, trial)` tells of each trial that ended. A trial the full disk stopped is
    queued again with its parameters, no trial starts after it, and the command ends with its one line once the
    running ones have ended (as `tune` without Ray)."""
    from .tune_trial import FullDisk

    ray = ray_jobs.connect(address)
    plan = dataclasses.replace(plan, path=plan.path.resolve(), data_dir=_data_folder(plan))
    # the fault suite's variables reach the tasks' processes (unset outside tests: no runtime_env of its own)
    fault_vars = faults.injected()
    injected = {"runtime_env": {"env_vars": fault_vars}} if fault_vars else {}
    task = ray.remote(run_trial_task).options(max_retries=ray_jobs.RETRIES, **ray_jobs.resources(ray), **injected)
    full_disk = FullDisk()
    room = ray_jobs.slots(ray)
    deadline = None if timeout is None else time.monotonic() + timeout
    running: dict[Any, Any] = {}  # task reference -> its trial
    try:
        while True:
            while len(running) < room and not full_disk.said and _may_start(study, trials, deadline, budget_used):
                trial = study.ask()
                trial.set_user_attr("study_dir", str(plan.path))
                plan.space.suggest(trial)  # drawn here, by the study's one seeded sampler
                where = (trial._trial_id, ray_jobs.threads(), os.getcwd(), track)
                ref = task.remote(plan, storage_url, heartbeat_s, study.pruner, *where)
                running[ref] = trial
            if not running:
                break
            (done,), _ = ray.wait(list(running), num_returns=1)
            ended = _tell(ray, study, running.pop(done), done)
            said(study, ended)
            full_disk.queue_again(study, ended)
    except KeyboardInterrupt:
        for ref, trial in running.items():
            ray.cancel(ref, force=True)
            _fail(study, trial, "interrupted")
        raise
    full_disk.raise_if_full()


def _may_start(study, trials: int | None, deadline: float | None, budget_used) -> bool:
    if deadline is not None and time.monotonic() >= deadline:
        return False
    return trials is None or budget_used(study) < trials


def _tell(ray, study, trial, ref):
    """Optuna told the task's outcome; the trial as stored (for the line `tune` prints about it)."""
    from optuna.trial import TrialState

    try:
        state, value, note = ray.get(ref)
    except ray.exceptions.RayError as error:  # its process died more often than Ray retries
        state, value, note = "failed", None, f"the Ray task died {ray_jobs.RETRIES + 1} times ({type(error).__name__})"
    if state == "complete":
        study.tell(trial, value)
    elif state == "pruned":
        trial.set_user_attr("note", note)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        _fail(study, trial, note)
    return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)


def _fail(study, trial, why: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("error", f"{why} (log: {trial_log(study_dir(trial), trial.number)})")
    study.tell(trial, state=TrialState.FAIL)


def trial_log(study_path: Path, number: int) -> Path:
    return study_path / "logs" / f"trial-{number:03d}.log"


def study_dir(trial) -> Path:
    return Path(trial.user_attrs.get("study_dir", "."))


def _competition(plan: StudyPlan):
    from ..competitions.registry import resolve

    return resolve(plan.competition)


def _data_folder(plan: StudyPlan) -> str:
    """The data folder as this machine finds it, absolute: the path every machine of the cluster reads."""
    from ..data.layout import open_layout

    return str(Path(open_layout(_competition(plan), plan.data_dir).root).resolve())
