"""An experiment's bookkeeping while it runs: each run's start, end and failure as events with the plan's ETA,
the result's lists, and the wall seconds of every attempt (timings.json). Thread-safe: on several GPUs runs
end at once."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_text
from .plan import TIMINGS_FILE, _relative, read_timings
from .plan_runs import PlannedRun


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


def emit(on_event, **fields) -> None:
    if on_event is not None:
        on_event(fields)


class Clock:
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


class Jobs:
    """The one owner of a run's bookkeeping, trained in this process or in its own on a GPU: the start, done, failed
    and interrupted events, the timings and the result's lists (thread-safe: several GPUs finish at once)."""

    def __init__(self, result: ExperimentResult, timings: Timings, clock: Clock, on_event):
        self.result, self.timings, self.clock, self.on_event = result, timings, clock, on_event
        self.lock = threading.Lock()

    def start(self, run: PlannedRun, resuming: bool, **where) -> None:
        emit(
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
        emit(self.on_event, event="skip", run=run.name, **self.clock.finish(None))

    def failed(self, run: PlannedRun, why: str) -> None:
        with self.lock:
            self.result.failed[run.name] = why
            emit(self.on_event, event="failed", run=run.name, error=why, **self.clock.finish(None))

    def interrupted(self, run: PlannedRun | None = None) -> None:
        """Stopped by Ctrl-C; said of `run` when it was the one running (not when the user stopped the waiting)."""
        with self.lock:
            self.result.interrupted = True
            if run is not None:
                emit(self.on_event, event="interrupted", run=run.name)

    def done(self, run: PlannedRun, resuming: bool, seconds: float, **extra) -> None:
        with self.lock:
            (self.result.resumed if resuming else self.result.trained).append(run.name)
            emit(self.on_event, event="done", run=run.name, seconds=seconds, **extra, **self.clock.finish(seconds))

    def ended(self, run: PlannedRun, seconds: float) -> None:
        """Wall seconds of one attempt, counted whatever its outcome."""
        self.timings.add(run, seconds)


class Timings:
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
