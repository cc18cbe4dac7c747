"""`analyze` for targets other than one label per image, from the run's held-out values (as its predict sees
them, inference/target_predict) and the fit it stored, written as analysis.md (and a picture for values):

    multilabel  per label: images holding it, images given it, true/false positives, missed, F1 and ROC AUC
    regression  predicted against true (scatter.png), bias, RMSE, the worst-predicted images
    ordinal     the per-grade confusion of true and submitted grades, each grade's recall, the values' scatter
    topk        where the true class ranks (1..k, or missed), the new class's recall, the most confused pairs

Each section is keyed by the kind's name in SECTIONS: the kind is chosen once, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..competitions.metrics import binary_auc
from ..competitions.targets import target_of
from ..core.atomic import atomic_write_text
from ..records.run_folder import RunDir
from .target_predict import held_out_values, stored_fit

WORST = 10
PAIRS = 10


@dataclass
class Section:
    """What a kind's analysis found: its analysis.md lines, pictures, and for grades and rankings the confusion
    counts (rows true, columns given) and the most confused (true, given, images) pairs, largest first."""

    lines: list[str]
    files: list[Path] = field(default_factory=list)
    confusion: np.ndarray | None = None
    pairs: list[tuple[str, str, int]] = field(default_factory=list)


def _confusion(truth, given, names: list[str]) -> tuple[np.ndarray, list[tuple[str, str, int]]]:
    counts = np.zeros((len(names), len(names)), np.int64)
    np.add.at(counts, (np.asarray(truth, np.int64), np.asarray(given, np.int64)), 1)
    off = [(names[t], names[g], int(counts[t, g])) for t, g in zip(*np.nonzero(counts)) if t != g]
    return counts, sorted(off, key=lambda pair: -pair[2])[:PAIRS]


def _labels(kind, truth, values, answers, classes, ids, folder) -> Section:
    chosen = answers if kind.form == "set" else (np.asarray(values) >= 0.5).astype(int)
    lines = [
        "| label | holding | given | true pos. | false pos. | missed | F1 | ROC AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for j, name in enumerate(classes):
        t, c = truth[:, j] == 1, chosen[:, j] == 1
        hits, extra, missed = int((t & c).sum()), int((~t & c).sum()), int((t & ~c).sum())
        f1 = 2 * hits / max(2 * hits + extra + missed, 1)
        auc = binary_auc(t, values[:, j])
        lines.append(
            f"| {name} | {int(t.sum())} | {int(c.sum())} | {hits} | {extra} | {missed} | {f1:.3f} | {auc:.3f} |"
        )
    given = "the fitted thresholds" if kind.form == "set" else "a probability of 0.5 or more"
    return Section([f"Labels given by {given}.", "", *lines])


def _scatter(truth, values, folder: Path, xlabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    axes.scatter(truth, values, s=12, alpha=0.6)
    low, high = float(min(np.min(truth), np.min(values))), float(max(np.max(truth), np.max(values)))
    axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("predicted")
    path = folder / "scatter.png"
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def _values(kind, truth, values, answers, classes, ids, folder) -> Section:
    error = np.asarray(answers, dtype=np.float64) - truth
    worst = np.argsort(-np.abs(error))[:WORST]
    lines = [
        f"RMSE {np.sqrt(np.mean(error**2)):.4f}; bias (mean predicted - true) {error.mean():+.4f}; "
        f"true spread {np.std(truth):.4f}, predicted spread {np.std(answers):.4f}",
        "",
        "![predicted against true](scatter.png)",
        "",
        "| worst images | true | predicted |",
        "|---|---|---|",
        *(f"| {ids[i]} | {truth[i]:g} | {answers[i]:.3f} |" for i in worst),
    ]
    return Section(lines, [_scatter(truth, answers, folder, "true")])


def _grades(kind, truth, values, answers, classes, ids, folder) -> Section:
    n, names = kind.n_grades, [str(g) for g in range(kind.n_grades)]
    counts, pairs = _confusion(truth, answers, names)
    recall = np.diag(counts) / np.maximum(counts.sum(axis=1), 1)
    lines = [
        "Rows: true grade; columns: submitted grade (the regressed value cut at the stored cut points).",
        "",
        "| true \\ submitted | " + " | ".join(names) + " | recall |",
        "|---" * (n + 2) + "|",
        *(f"| {g} | " + " | ".join(str(int(c)) for c in counts[g]) + f" | {recall[g]:.2f} |" for g in range(n)),
        "",
        "![regressed value against true grade](scatter.png)",
    ]
    return Section(lines, [_scatter(truth, values, folder, "true grade")], counts, pairs)


def _ranks(kind, truth, values, answers, classes, ids, folder) -> Section:
    hits = answers == truth[:, None]
    rank = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    shares = [f"rank {r}: {int((rank == r).sum())}" for r in range(1, kind.k + 1)]
    names = [*classes, kind.new_class or "(new)"]
    counts, pairs = _confusion(truth, answers[:, 0], names)
    lines = [f"Where the true class ranks: {', '.join(shares)}, missed: {int((rank == 0).sum())}."]
    if kind.new_class:
        new = truth == len(classes)
        lines.append(
            f"New class {kind.new_class!r}: {int(new.sum())} images, ranked first for {int((rank[new] == 1).sum())}."
        )
    lines += ["", "| true | ranked first | images |", "|---|---|---|", *(f"| {t} | {p} | {c} |" for t, p, c in pairs)]
    return Section(lines, confusion=counts, pairs=pairs)


SECTIONS = {"multilabel": _labels, "regression": _values, "ordinal": _grades, "topk": _ranks}


def analyze_target_run(run_dir: Path | str, folder: Path, comp, classes: list[str]) -> Section:
    """The kind's section for the run's held-out values, written to folder/analysis.md (listed last in files)."""
    run = RunDir(run_dir)
    kind = target_of(comp)
    ids, truth, values = held_out_values(run)
    answers = kind.answer(values, stored_fit(run))
    folder.mkdir(parents=True, exist_ok=True)
    section = SECTIONS[kind.name](kind, np.asarray(truth), np.asarray(values), answers, classes, ids, folder)
    head = f"# {run.path.name}: what it gets wrong ({len(ids)} validation images, {comp.metric.label})"
    atomic_write_text(folder / "analysis.md", "\n".join([head, "", *section.lines, ""]))
    section.files.append(folder / "analysis.md")
    return section
