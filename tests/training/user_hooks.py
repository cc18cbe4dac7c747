"""Hooks a user might write, importable as `user_hooks:Name` by a child process with tests/training on its
PYTHONPATH (a resume creates the hooks config.json names again by that name)."""

import numpy as np

from kaggle_kit.training import Hook


class CountBatches(Hook):
    """Counts the batches trained and carries the count in last.pt; each epoch's row gets the running count, and
    each fit's start (`before_fit`) records the count it began at (0, then what last.pt held on a resume)."""

    def __init__(self):
        self.batches, self.fits = 0, []

    def before_fit(self, state):
        self.fits.append(self.batches)

    def after_batch(self, state, batch):
        self.batches += 1

    def after_epoch(self, state, outcome):
        outcome.row["batches_seen"] = self.batches

    def state_dict(self):
        return {"batches": self.batches, "fits": list(self.fits)}

    def load_state_dict(self, state):
        self.batches, self.fits = state["batches"], list(state["fits"])


class NumpyState(Hook):
    """A hook whose state last.pt could not load with weights_only=True: a numpy array (np.mean's result, a
    numpy scalar, would be refused too)."""

    def state_dict(self):
        return {"losses": np.zeros(3)}


class NeedsArguments(Hook):
    def __init__(self, threshold: float):
        self.threshold = threshold
