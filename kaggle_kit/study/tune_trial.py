"""One trial of a `tune` study: its parameters drawn, its run (or fold group) trained, its score handed back.

A trial's folder is `trial-NNN` (Optuna's number, unique across workers) and holds trial.json: the study, the
parameters, the state (complete, pruned, failed), the score and, for a pruned trial, when and why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..competitions.registry import Competition
from ..core import faults
from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from ..records.run_folder import RunDir, best_row_interval
from .tune_plan import StudyPlan

TRIAL_FILE = "trial.json"
WORKER = "worker"  # user attribute: the host and process id running the trial
DEAD_WORKER = "dead_worker"  # user attribute of a trial whose worker of this machine died, and of its retry
DISK_FULL = "disk_full"  # user attribute of a trial that failed for want of disk space (its retry: False until then)


class SurplusTrial(Exception):
    """Another worker filled the trial cap while this one was starting a trial: it ends unrun (state FAIL, user
    attribute `surplus`) and this worker stops."""


@dataclass
class TrialOutcome:
    value: float | None
    epochs: int
    pruned: str | None = None  # why the pruner stopped it
    interval: dict | None = None  # the value's 95% bootstrap interval and n (competitions/bootstrap.Interval)


def objective(plan: StudyPlan, comp: Competition, cap: int | None, track: tuple[str, ...] = ()):
    """The function Optuna calls for each trial; `track` ("mlflow", "tensorboard") logs each trial's run, its MLflow
    run tagged with the study, the trial's number and its parameters."""
    import optuna

    def run_trial(trial) -> float:
        if cap is not None and _surplus(trial, cap):
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"the cap of {cap} trials was reached by other workers")
        params = plan.space.suggest(trial)
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        run_dir = plan.path / f"trial-{trial.number:03d}"
        if (trial.user_attrs.get(DEAD_WORKER) or trial.user_attrs.get(DISK_FULL)) and trial.user_attrs.get("run"):
            # a dead worker's trial, or one the full disk stopped, again in its folder: its run never finished
            # (no trial.json says complete), so it starts over
            run_dir = Path(trial.user_attrs["run"])
            shutil.rmtree(run_dir, ignore_errors=True)
            trial.set_user_attr(DISK_FULL, False)  # copied from the failed trial, as its error: not this one's
            trial.set_user_attr("error", "")
        trial.set_user_attr("run", str(run_dir))
        retried = _retried(trial)
        record = {"study": plan.study, "trial": trial.number, "params": params, "retry_of": retried}
        try:
            outcome = _train(plan, comp, trial, params, run_dir, track)
            trial.set_user_attr("epochs", outcome.epochs)
            if outcome.interval and not outcome.pruned:  # a pruned trial's value is Optuna's last reported epoch's
                trial.set_user_attr("interval", outcome.interval)
            state = "pruned" if outcome.pruned else "complete"
            figures = {"value": outcome.value, "interval": outcome.interval}
            _write(run_dir, {**record, "state": state, **figures, "epochs": outcome.epochs, "pruned": outcome.pruned})
        except KitError as error:
            _record_failure(trial, run_dir, record, error)
            raise
        if outcome.pruned:
            trial.set_user_attr("note", outcome.pruned)
            raise optuna.TrialPruned(outcome.pruned)
        return outcome.value

    return run_trial


def _record_failure(trial, run_dir: Path, record: dict[str, Any], error: KitError) -> None:
    """The trial's error in the storage and in its trial.json; a full disk also marks it to run again (`FullDisk`),
    and as its trial.json may not fit either, the storage's mark is what counts."""
    said = str(error).splitlines()[0]
    trial.set_user_attr("error", said)
    if isinstance(error, faults.NoSpace):
        trial.set_user_attr(DISK_FULL, True)
    try:
        _write(run_dir, {**record, "state": "failed", "error": said})
    except faults.NoSpace:
        pass


class FullDisk:
    """An Optuna callback: a trial that failed because the disk was full is queued again with its parameters (it
    runs in its folder the next time the study runs) and the worker stops, as its next trial would fail the same
    way. `raise_if_full` then ends the command with the trial's one line."""

    def __init__(self) -> None:
        self.said: str | None = None

    def __call__(self, study, trial) -> None:
        if self.queue_again(study, trial):
            study.stop()

    def queue_again(self, study, trial) -> bool:
        """A trial the full disk stopped queued again with its parameters (True), or nothing done (False); `tune
        --ray`'s driver calls it for each trial a task ended, outside `study.optimize`."""
        import warnings

        from optuna.storages import RetryFailedTrialCallback
        from optuna.trial import TrialState

        if trial.state != TrialState.FAIL or not trial.user_attrs.get(DISK_FULL):
            return False
        with warnings.catch_warnings():  # "experimental since 2.8": the call is what Optuna documents for this
            warnings.simplefilter("ignore")
            RetryFailedTrialCallback(max_retry=None)(study, trial)  # a full disk is never the trial's fault
        self.said = self.said or f"trial {trial.number}: {trial.user_attrs.get('error')}"
        return True

    def raise_if_full(self) -> None:
        if self.said:
            raise KitError(f"{self.said} (the trial runs again, in its folder, when the study runs next)")


def retry_dead_workers(study) -> list[int]:
    """Trials a worker of this machine left RUNNING when it died (killed, crashed, a power cut): failed, and queued
    again with the same parameters (Optuna's RetryFailedTrialCallback) to run in the same folder. The journal file
    has no heartbeat (a database storage's workers have one, `tune_storage`): here a trial's owner is dead when
    its recorded process is gone from this machine. The numbers of the trials retried."""
    import warnings

    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    storage, host = study._storage, socket.gethostname()  # Optuna's own retry callbacks use the storage too
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
        if owner != host or not pid.isdigit() or _alive(int(pid)):
            continue
        storage.set_trial_user_attr(trial._trial_id, DEAD_WORKER, True)
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            continue  # another worker settled it first
        with warnings.catch_warnings():  # "experimental since 2.8": the call is what Optuna documents for this
            warnings.simplefilter("ignore")
            RetryFailedTrialCallback(max_retry=2)(study, storage.get_trial(trial._trial_id))
        retried.append(trial.number)
    return retried


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that number: alive
        return True
    return True


def _surplus(trial, cap: int) -> bool:
    """True when `cap` trials numbered before this one are running, waiting or done: the storage numbers trials
    atomically, so of two workers racing for the last place exactly one finds it free."""
    from optuna.trial import TrialState

    ahead = [
        t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number and t.state != TrialState.FAIL
    ]
    return len(ahead) >= cap


def _retried(trial) -> int | None:
    """The number of the failed trial (its worker died) this one repeats with the same parameters, if any."""
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    with warnings.catch_warnings():  # "experimental since 2.8": the call is what Optuna documents for this
        warnings.simplefilter("ignore")
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)


def trial_folder(study_path: Path, trial) -> Path:
    """A trial's run folder: its own number's, or for a retry the folder of the trial it repeats."""
    return study_path / Path(trial.user_attrs.get("run") or f"trial-{trial.number:03d}").name


def trial_tags(plan: StudyPlan, number: int, params: dict[str, Any]) -> dict[str, str]:
    """The MLflow tags that find a trial's run from its study, and its parameters at a glance."""
    return {"study": plan.study, "trial": str(number), "params": json.dumps(params, sort_keys=True, default=str)}


def _train(plan: StudyPlan, comp: Competition, trial, params: dict[str, Any], run_dir: Path, track) -> TrialOutcome:
    if plan.folds:
        return _train_group(plan, comp, params, run_dir)
    from .. import training
    from ..training.hooks.pruning import Pruning
    from ..training.tracking import RunTracking

    hooks = () if plan.space.pruner == "none" else (Pruning(trial, plan.space.pruner),)
    overrides = {**plan.fixed, **params}
    tracker = RunTracking(list(track), tags=trial_tags(plan, trial.number, params)) if track else None
    try:
        if (run_dir / "last.pt").is_file():  # a Ray task retried after its process died: the trial goes on
            result = training.resume(run_dir, plan.data_dir, tracker=tracker, hooks=hooks)
        else:
            result = training.train(
                comp, plan.data_dir, plan.recipe, out=run_dir, tracker=tracker, hooks=hooks, **overrides
            )
    except BaseException as error:
        if tracker:
            tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    if tracker:
        tracker.finish("KILLED" if result.interrupted else "FINISHED")
    if result.interrupted:
        raise KeyboardInterrupt  # Optuna marks the trial failed and the worker stops, as `train` would
    pruned = hooks[0].pruned_at is not None if hooks else False
    value = result.best_metric
    if value is None or value != value:
        raise KitError(f"{run_dir}: no validation metric to score the trial by")
    interval = best_row_interval(RunDir(run_dir).history(), comp.metric)
    note = hooks[0].pruned_note if pruned else None
    return TrialOutcome(value, result.epochs_run, note, interval.to_dict() if interval else None)


def _train_group(plan: StudyPlan, comp: Competition, params: dict[str, Any], run_dir: Path) -> TrialOutcome:
    """A fold group scored by its OOF metric; folds are not pruned (their epochs are not one sequence)."""
    from ..workflows import cross_validation

    overrides = {**plan.fixed, **params}
    if (run_dir / "folds.json").is_file():  # a retried Ray task: the group's finished folds are kept
        group = cross_validation.FoldGroup(run_dir)
    else:
        group, _ = cross_validation.plan_group(comp, plan.data_dir, plan.recipe, run_dir, plan.folds, **overrides)
    result = cross_validation.train_folds(group, None, plan.data_dir)
    if result.interrupted is not None:
        raise KeyboardInterrupt
    summary = cross_validation.finish_group(group, plan.data_dir, device=overrides.get("device") or "auto")
    if summary is None:
        raise KitError(f"{run_dir}: the fold group did not finish every fold")
    epochs = sum(len(_history(group.fold_dir(f))) for f in range(1, group.k + 1))
    interval = summary.get("oof_interval") or (summary.get("oof_fit") or {}).get("interval")
    return TrialOutcome(summary["oof_metric"], epochs, interval=interval)


def _history(run_dir: Path) -> list[dict[str, Any]]:
    return RunDir(run_dir).history()


def _write(run_dir: Path, record: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / TRIAL_FILE, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
