"""`kaggle-kit tune`: an Optuna study whose trials are ordinary runs (or fold groups, scored by their OOF metric).

    runs/<competition>/tune-<study>/
        study.json         what every worker of the study trains: competition, recipe, fixed flags, space
        journal.log        the study itself (Optuna's journal file), unless --storage names a database
        trial-000/ ...     each trial's run folder (or fold group), trial.json saying its parameters and state

The same command started again (another process, GPU or machine) joins the study: trials are drawn by one TPE
sampler from the shared storage, numbered by it, and `--trials N` caps the total across all workers. A trial is
stopped when its pruner finds it hopeless (the training hook `hooks.pruning`), and its folder says so.
"""

from __future__ import annotations

import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..competitions.bootstrap import describe_figure
from ..competitions.registry import Competition, resolve
from ..core.errors import KitError
from . import tune_storage
from .tune_plan import StudyPlan, load_plan, plan_study, study_path, write_record

__all__ = ["StudyPlan", "StudySummary", "load_plan", "plan_study", "run_study", "study_path", "summarise"]


@dataclass
class StudySummary:
    path: Path
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_interval: dict | None = None  # best_value's 95% bootstrap interval and n, where the trial stored one
    best_run: Path | None = None  # its folder (a retried trial's is the folder of the trial it repeats)


def run_study(
    plan: StudyPlan,
    trials: int | None = None,
    timeout: float | None = None,
    storage_url: str | None = None,
    heartbeat_s: int = tune_storage.DEFAULT_HEARTBEAT_S,
    ray: str | None = None,
    track: list[str] | None = None,
) -> StudySummary:
    """This worker's share of the study: trials until the cap across workers (`trials`), `timeout` seconds, or
    Ctrl-C. `storage_url`: the database, password included (the plan holds it redacted). `ray`: a Ray cluster's
    address (or "auto"): the trials run as Ray tasks, side by side (tune_ray). `track`: "mlflow" and/or
    "tensorboard", each trial's run logged (MLflow tags `study`, `trial`, `params`)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from ..training.tracking import check_kinds

    if plan.storage is not None and storage_url is None:
        raise KitError(f"{plan.path} lives in {plan.storage}: pass --storage with its password again (never stored)")
    if trials is not None and trials < 1:
        raise KitError(f"--trials {trials}: give 1 or more")
    kinds = tuple(check_kinds(track))
    if kinds and plan.folds:
        raise KitError("--track does not log fold groups yet, and this study's trials are: drop --track")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _quiet_failed_trials()
    storage = tune_storage.open_storage(storage_url, plan.path, heartbeat_s)
    write_record(plan)  # once the storage opened: a wrong URL leaves no study folder claiming it
    study = _open_study(plan, storage)
    if storage_url is None:  # the journal file: a dead worker of this machine is found by its process id
        from .tune_trial import retry_dead_workers

        retry_dead_workers(study)
    comp = resolve(plan.competition)
    callbacks = [_say_trial(comp)]
    if trials is not None:
        # a worker's running trials count, so two workers near the cap do not both start one more; a trial that
        # fails (a dead worker's, retried) does not
        counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        callbacks.append(MaxTrialsCallback(trials, states=counted))
        if _budget_used(study) >= trials:
            return summarise(plan, study)
    if ray is not None:
        from .tune_ray import run_study_on_ray

        run_study_on_ray(plan, study, ray, trials, timeout, storage_url, heartbeat_s, kinds, callbacks[0], _budget_used)
        return summarise(plan, study)
    from .tune_trial import FullDisk, SurplusTrial, objective

    full_disk = FullDisk()
    study.optimize(
        objective(plan, comp, trials, kinds),
        n_trials=trials,
        timeout=timeout,
        callbacks=[*callbacks, full_disk],
        catch=(KitError, SurplusTrial),
        gc_after_trial=True,
    )
    full_disk.raise_if_full()
    return summarise(plan, study)


class _FailedTrialLog(logging.Filter):
    """Optuna logs a failed trial's error with its traceback; `_say_trial` says it in one line instead (an error
    that is no KitError still ends the command with its traceback, as any bug does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Trial ") and " failed with " in text)


def _quiet_failed_trials() -> None:
    logger = logging.getLogger("optuna.study._optimize")  # the logger of Optuna's trial loop
    if not any(isinstance(f, _FailedTrialLog) for f in logger.filters):
        logger.addFilter(_FailedTrialLog())


def _budget_used(study) -> int:
    """Trials that took a place under the cap; a waiting one (a dead worker's, queued again) is still to run."""
    from optuna.trial import TrialState

    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=counted))


def _open_study(plan: StudyPlan, storage):
    """The study, created by the first worker with the space's seed; a worker joining it samples from a seed of
    its own (the same seed would draw the same first parameters in every worker)."""
    import optuna

    seed = plan.space.seed
    try:
        optuna.create_study(storage=storage, study_name=plan.study, direction=plan.direction)
    except optuna.exceptions.DuplicatedStudyError:
        seed = random.SystemRandom().randrange(2**31)
    study = optuna.load_study(
        study_name=plan.study, storage=storage, sampler=optuna.samplers.TPESampler(seed=seed), pruner=_pruner(plan)
    )
    if study.direction.name.lower() != plan.direction:
        raise KitError(
            f"{plan.path}: the stored study is to {study.direction.name.lower()}, the metric to {plan.direction}"
        )
    return study


def _pruner(plan: StudyPlan):
    import optuna

    space = plan.space
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=space.startup_trials, n_warmup_steps=space.warmup_epochs)
    if space.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    return optuna.pruners.NopPruner()


def _say_trial(comp: Competition):
    def say(study, trial) -> None:
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        figure = describe_figure(comp.metric, trial.user_attrs.get("interval"), trial.value)
        value = "" if trial.value is None else f": {figure}"
        note = trial.user_attrs.get("note") or trial.user_attrs.get("error") or ""
        print(
            f"trial {trial.number} {trial.state.name.lower()}{value} ({params}){' - ' + note if note else ''}",
            file=sys.stderr,
            flush=True,
        )

    return say


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarise(plan: StudyPlan, study) -> StudySummary:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for trial in trials:
        state = "surplus" if trial.user_attrs.get("surplus") else trial.state.name.lower()
        counts[state] = counts.get(state, 0) + 1
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return StudySummary(plan.path, counts, None, None, {})
    best = study.best_trial
    from .tune_trial import trial_folder

    interval = best.user_attrs.get("interval")
    return StudySummary(
        plan.path, counts, best.number, best.value, dict(best.params), interval, trial_folder(plan.path, best)
    )
