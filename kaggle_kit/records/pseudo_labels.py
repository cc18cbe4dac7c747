"""A run's pseudo-labels: test images a source run (or fold group) predicts confidently, trained on with the class it
predicts. Chosen once by `kaggle_kit.workflows.pseudo_labelling` (which predicts through `predict`), then kept in
the run folder:

    pseudo_labels.csv            id,label (test ids, class names): the set, read back on resume
    config.json `pseudo_labels`  source, its kind and data fingerprint, threshold, count, count per class

They join the training split only: the validation split (and so best-epoch choice, calibration and analysis) is
the competition's labelled images alone, scored exactly as without pseudo-labels.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.errors import KitError
from .run_folder import RunDir

PSEUDO_FILE = "pseudo_labels.csv"


@dataclass(frozen=True)
class PseudoLabels:
    ids: tuple[str, ...]  # test ids, in the test set's order
    labels: np.ndarray  # class indices (int64) into `classes`, the source's argmax
    classes: tuple[str, ...]
    source: str  # the run folder (or fold group) that predicted them
    source_kind: str  # "run" or "group"
    source_fingerprint: str  # the data the source was trained on: equal to this run's
    threshold: float  # calibrated max probability kept: >= threshold
    test_images: int  # test images considered (every decodable one)
    details: dict[str, Any] = field(default_factory=dict)  # the source's TTA, temperature, checkpoint...

    def __len__(self) -> int:
        return len(self.ids)

    def record(self) -> dict[str, Any]:
        """config.json's `pseudo_labels` block."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "source_fingerprint": self.source_fingerprint,
            "threshold": self.threshold,
            "count": len(self),
            "test_images": self.test_images,
            "per_class": {name: int(n) for name, n in zip(self.classes, counts)},
            "file": PSEUDO_FILE,
            **self.details,
        }


def save(run: RunDir, pseudo: PseudoLabels) -> None:
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["id", "label"])
    writer.writerows((image_id, pseudo.classes[label]) for image_id, label in zip(pseudo.ids, pseudo.labels))
    atomic_write_text(run.file(PSEUDO_FILE), table.getvalue())


def load(run: RunDir, classes: list[str]) -> PseudoLabels | None:
    """The set a run trained with (None for a run without pseudo-labels): resume trains on exactly it."""
    block = run.read_config().pseudo_labels
    if not block:
        return None
    path = run.file(PSEUDO_FILE)
    if not path.is_file():
        raise KitError(f"{path} is missing but config.json says the run trains with pseudo-labels; restore the file")
    index = {name: k for k, name in enumerate(classes)}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    unknown = next((row for row in rows if row.get("label") not in index), None)
    if unknown is not None or (rows and "id" not in rows[0]):
        raise KitError(f"{path}: rows must be `id,label` with labels among the run's classes; restore the file")
    return PseudoLabels(
        ids=tuple(row["id"] for row in rows),
        labels=np.array([index[row["label"]] for row in rows], dtype=np.int64),
        classes=tuple(classes),
        source=str(block.get("source")),
        source_kind=str(block.get("source_kind")),
        source_fingerprint=str(block.get("source_fingerprint")),
        threshold=float(block.get("threshold")),
        test_images=int(block.get("test_images", 0)),
    )
