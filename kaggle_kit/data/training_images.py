"""Which images a run trains and validates on, decided once where the command decides it and passed down whole:

    val_ids  the fixed validation images of a fold (`train --folds`: folds.json says which); None: a seeded
             stratified split of the recipe's val_fraction (or, on resume, the run's own split.json)
    pseudo   pseudo-labelled test images joined to training alone, with their source (`train --pseudo-labels`);
             on resume, the run's own pseudo_labels.csv

`batches.prepare_data` turns it into the training cache and the split; nothing between the command and it
looks inside.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import pseudo_labels
from ..records.pseudo_labels import PseudoLabels
from ..records.run_folder import RunDir


@dataclass(frozen=True)
class TrainingImages:
    val_ids: tuple[str, ...] | None = None
    pseudo: PseudoLabels | None = None

    @classmethod
    def fold(cls, val_ids) -> TrainingImages:
        """A fold of a fold group: these images validate, the rest train."""
        return cls(val_ids=tuple(val_ids))

    @classmethod
    def of_run(cls, run: RunDir, classes: list[str]) -> TrainingImages:
        """What a run being resumed trained on: its pseudo-labels here; its split.json, read by prepare_data."""
        return cls(pseudo=pseudo_labels.load(run, classes))

    @property
    def added(self) -> int:
        """Training images beyond the labelled ones (counted when the batch size is fitted to the data)."""
        return len(self.pseudo) if self.pseudo is not None else 0
