"""The experiment report's pictures: the results table, the training curves of each cell (seeds averaged,
folds of a group averaged) and the wall time per cell, as PNG bytes for `report.write_report` to write."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..competitions.metrics import Metric
from ..records.group_folder import FoldGroup, is_group
from ..records.run_folder import RunDir
from .cell_layout import WINNER_MARK, cell_at, columns_of, group_label, row_combos, row_label
from .plan import Cell, Plan

# the Figure 2 panels: history.csv column and its title
CURVE_PANELS = (
    ("train_loss", "training loss"),
    ("train_accuracy", "training accuracy"),
    ("val_accuracy", "validation accuracy"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _panels(plan: Plan) -> list[tuple[str, list[tuple[str, str]]]]:
    """The table as plot panels: (title, [(x label, cell name)]); one panel per table row when there are columns."""
    if plan.table_columns:
        return [
            (
                group_label(plan, row),
                [(plan.label(plan.table_columns, c), cell_at(plan, row, c)) for c in columns_of(plan)],
            )
            for row in row_combos(plan)
        ]
    return [("", [(row_label(plan, row), cell_at(plan, row)) for row in row_combos(plan)])]


def table_png(plan: Plan, val, kaggle, published, metric: Metric, best_val: str | None) -> bytes:
    """Our validation and Kaggle numbers (mean ± std over seeds) and the published ones, in the table's shape."""
    plt = _pyplot()
    panels = _panels(plan)
    widest = max(len(points) for _, points in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.5, 1.5 * widest + 2) * len(panels), 3.8), squeeze=False)
    series = [("ours, validation", val, "o", 0.0), ("ours, Kaggle public", kaggle, "s", 0.12)]
    for ax, (title, points) in zip(axes[0], panels):
        for label, stats, marker, offset in series:
            shown = [(i + offset, stats[cell]) for i, (_, cell) in enumerate(points) if stats.get(cell) is not None]
            if shown:
                ax.errorbar(
                    [x for x, _ in shown],
                    [s.mean for _, s in shown],
                    yerr=[s.std or 0.0 for _, s in shown],
                    fmt=marker,
                    capsize=4,
                    label=label,
                )
        theirs = [(i - 0.12, published[cell]) for i, (_, cell) in enumerate(points) if cell in published]
        if theirs:
            ax.plot([x for x, _ in theirs], [y for _, y in theirs], "x", color="black", markersize=9, label="published")
        for i, (_, cell) in enumerate(points):
            if cell == best_val and val.get(cell) is not None:
                ax.annotate(
                    f"{WINNER_MARK} best",
                    (i, val[cell].mean),
                    textcoords="offset points",
                    xytext=(8, 8),
                    color="tab:red",
                )
        ax.set_xticks(range(len(points)))
        ax.set_xticklabels([name for name, _ in points], fontsize=9)
        ax.set_xlim(-0.6, len(points) - 0.4)
        ax.margins(y=0.15)  # room for the winner's label above the highest point
        ax.set_title(title)
        ax.set_ylabel(f"{metric.label} ({metric.direction})")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no finished run yet (all interrupted): no legend
            ax.legend(fontsize=8)
    fig.suptitle(f"{plan.title or plan.name}: mean ± std over seeds", fontsize=10)
    return _png(fig)


def curves_png(plan: Plan, rows: list[dict[str, Any]], folder: Path, metric: Metric) -> bytes:
    """Figure 2: per panel row, one group of the other axes; per line, one value of `curves.by`; mean over seeds."""
    import itertools

    import pandas as pd
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    panels = list(CURVE_PANELS)
    if metric.name != "accuracy":
        panels.append(("val_metric", f"validation {metric.label} ({metric.direction})"))
    by = plan.curves_by
    others = [a for a in plan.axes if a.name != by]
    groups = [dict(zip([a.name for a in others], combo)) for combo in itertools.product(*(a.values for a in others))]
    line_values = next((a.values for a in plan.axes if a.name == by), (None,))
    histories: dict[str, list] = {}
    for row in rows:
        if row["status"] == "finished":  # as the tables: an interrupted run's early epochs would bend the mean
            for run in _trained_folders(folder / row["run_dir"]):
                history = RunDir(run).history()
                if len(history):
                    histories.setdefault(row["cell"], []).append(history)
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(4.2 * len(panels), 3.2 * len(groups)), squeeze=False)
    for g, group in enumerate(groups):
        for value in line_values:
            values = dict(group, **({by: value} if by else {}))
            cell = Cell({a: values[a] for a in plan.axis_names}).name
            runs = histories.get(cell)
            if not runs:
                continue
            joined = pd.concat(runs)
            mean = joined.groupby("epoch").mean(numeric_only=True)
            for p, (column, _title) in enumerate(panels):
                axes[g][p].plot(mean.index, mean[column], marker=".", label=plan.label(by, value) if by else cell)
        for p, (_column, title) in enumerate(panels):
            ax = axes[g][p]
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            label = group_label(plan, group)
            ax.set_title(f"{title}" + (f"\n{label}" if label else ""), fontsize=10)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8, title=by)
    fig.suptitle(f"{plan.title or plan.name}: training curves, mean over seeds")
    return _png(fig)


def _trained_folders(path: Path) -> list[Path]:
    """The run folders whose history.csv make a row's curves: the run, or a fold group's folds (averaged as seeds)."""
    if not is_group(path):
        return [path]
    group = FoldGroup(path)
    return [group.fold_dir(fold) for fold in range(1, group.k + 1)]


def wall_png(plan: Plan, wall, train_seconds) -> bytes:
    plt = _pyplot()
    cells = [c.name for c in plan.cells()]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(cells) + 1.6))
    ys = range(len(cells))
    for offset, (label, stats) in zip((-0.2, 0.2), (("wall", wall), ("training loop", train_seconds))):
        means = [stats[c].mean if stats[c] else 0.0 for c in cells]
        errors = [(stats[c].std or 0.0) if stats[c] else 0.0 for c in cells]
        ax.barh([y + offset for y in ys], means, xerr=errors, height=0.38, capsize=3, label=label)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(cells, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per run (mean ± std over seeds)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("wall time per cell")
    return _png(fig)
