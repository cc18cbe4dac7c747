"""Ctrl-C and SIGTERM during a head-only epoch wait for its end.

A head-only epoch takes milliseconds and is checkpointed only now and then: a stop request is held until the
epoch (and the hooks before this one) finished, then raised as `HeldInterrupt`, so the checkpoint hook can save
that exact epoch and an interrupted run resumes exactly where it stopped. Signals reach the main thread alone.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from ..epoch import EpochOutcome
from ..state import TrainState
from .base import LAST, Hook


class HeldInterrupt(KeyboardInterrupt):
    """A stop request held to the end of an epoch: the state is that finished epoch's."""


class Interrupts(Hook):
    order = LAST

    def __init__(self, hold: bool):
        self.hold = hold and threading.current_thread() is threading.main_thread()
        self.requested = False
        self.saved: dict[int, Any] = {}

    def before_epoch(self, state: TrainState) -> None:
        if self.hold:
            for number in (signal.SIGINT, signal.SIGTERM):
                self.saved[number] = signal.getsignal(number)
                signal.signal(number, self._held)

    def after_epoch(self, state: TrainState, outcome: EpochOutcome) -> None:
        self._restore()
        if self.requested:
            raise HeldInterrupt

    def on_interrupt(self, state: TrainState, at_epoch_end: bool) -> None:
        self._restore()

    def on_error(self, state: TrainState, error: Exception) -> bool:
        self._restore()
        return False

    def _held(self, signum, frame) -> None:
        self.requested = True

    def _restore(self) -> None:
        for number, handler in self.saved.items():
            signal.signal(number, handler)
        self.saved.clear()
