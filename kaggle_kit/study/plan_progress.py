"""The whole plan's progress for `experiment`: epochs done of every run's epochs, and when the plan will end.

The runs' own history.csv files are the record (every finished epoch is a row), so the count is the same in
one process or with a `kaggle-kit train` process per GPU, and a resumed plan starts from what is already done.
The ETA is the wall time per epoch trained in this session times the epochs left: known after the first epoch,
not only after the first whole run, and with several GPUs the wall time already reflects their parallel work.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


def _rows(path: Path) -> int:
    try:
        with open(path) as handle:
            return max(sum(1 for line in handle if line.strip()) - 1, 0)  # the header is not an epoch
    except OSError:
        return 0


class PlanProgress:
    def __init__(self, runs: list, every_s: float = 60.0, on_event: Callable[[dict[str, Any]], None] | None = None):
        self.runs, self.every_s, self.on_event = runs, every_s, on_event
        self.total = sum(run.epochs_planned for run in runs)  # a fold group: every fold's epochs
        self.started = time.perf_counter()
        self.done_at_start = self.epochs_done()
        self.told = self.started

    def epochs_done(self) -> int:
        return sum(self._done(run) for run in self.runs)

    @staticmethod
    def _done(run) -> int:
        return sum(min(_rows(Path(history)), run.recipe.epochs) for history in run.histories())

    def status(self) -> dict[str, Any]:
        done, elapsed = self.epochs_done(), time.perf_counter() - self.started
        trained = done - self.done_at_start
        eta = elapsed / trained * (self.total - done) if trained > 0 else None
        runs_done = sum(self._done(r) >= r.epochs_planned for r in self.runs)
        return {
            "event": "plan",
            "epochs_done": done,
            "epochs_total": self.total,
            "runs_done": runs_done,
            "runs_total": len(self.runs),
            "elapsed_s": elapsed,
            "eta_s": eta,
        }

    def tell(self, force: bool = False) -> None:
        """The status as a "plan" event: when forced, else at most every `every_s` seconds."""
        if self.on_event is None or not (force or time.perf_counter() - self.told >= self.every_s):
            return
        self.told = time.perf_counter()
        self.on_event(self.status())
