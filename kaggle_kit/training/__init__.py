"""Training: `train` / `resume` (entry.py) around `fit` (loop.py). Read in this order: loop, epoch, state, hooks/."""

from .entry import resume, train
from .loop import TrainResult, fit

__all__ = ["TrainResult", "fit", "resume", "train"]
