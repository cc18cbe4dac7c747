"""Training: `train` / `resume` (entry.py) around `fit` (loop.py). Read in this order: loop, epoch, state, hooks/.
`Hook` is the base of every variation of the loop, the user's own included (docs/hooks.md)."""

from .entry import resume, train
from .events import Batch, EpochOutcome
from .hooks.base import Hook
from .hooks.loading import load_hook
from .loop import TrainResult, fit

__all__ = ["Batch", "EpochOutcome", "Hook", "TrainResult", "fit", "load_hook", "resume", "train"]
