"""An experiment's report, rebuilt at any time from its run folders: results.csv, report.md and PNGs.

    results.csv       one row per run: cell, seed, axis values, arch, recipe, epochs, validation metric
                      (best epoch, in the metric's direction), Kaggle public score from the ledger, seconds
    report.md         the study's table shape with our numbers (mean ± std over seeds), the published
                      numbers beside ours, each metric's direction in words and the winner marked by it
    table.png         the same numbers as points with seed error bars, published values beside them
    curves.png        the study's Figure 2 panels: training loss, training accuracy, validation accuracy per
                      epoch, one line per value of the plan's `curves.by` axis, mean over seeds
    wall-time.png     wall seconds per cell

Every number comes from the run folders (history.csv, config.json), the experiment's timings.json and
the submission ledger, so `kaggle-kit report` after the fact writes exactly what `experiment` wrote.
The winner is always picked by the competition metric's direction: for log loss the LOWER value wins.
Standard deviations are over seeds with ddof=1 (the sample standard deviation); one seed has none."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..competitions.metrics import Metric
from ..competitions.registry import resolve
from ..core.atomic import atomic_write_bytes, atomic_write_text
from ..submissions.provenance import kaggle_records, run_summary
from .cell_layout import WINNER_MARK, cell_at, columns_of, row_combos, row_label
from .noise import cell_intervals, describe_lead, lead_over_runner_up
from .plan import FOLDS_KEY, Plan, experiment_plan, format_value, read_experiment, read_timings
from .report_plots import curves_png, table_png, wall_png
from .seed_stats import Stat, seed_noise_note, stat, tied, winner

RESULTS_FILE = "results.csv"

REPORT_FILE = "report.md"

TABLE_PNG = "table.png"

CURVES_PNG = "curves.png"

WALL_PNG = "wall-time.png"

RESULT_COLUMNS = [
    "cell",
    "seed",
    "status",
    "competition",
    "arch",
    "recipe",
    "epochs",
    "epochs_planned",
    "best_epoch",
    "metric",
    "higher_is_better",
    "val_metric",
    "val_metric_final",
    "val_metric_calibrated",
    "calibrated_with",
    "settings",
    "kaggle_public",
    "kaggle_private",
    "train_seconds",
    "wall_seconds",
    "run_dir",
]


def _run_column(plan: Plan, name: str) -> str:
    """A run's own figure named like a plan axis (arch, epochs) is written `run_<name>`: one name, one column."""
    return f"run_{name}" if name in plan.axis_names else name


def collect(folder: Path | str, ledger=None) -> tuple[Plan, list[dict[str, Any]]]:
    """The experiment's plan and one row per planned run, read from the run folders (missing ones marked)."""
    folder = Path(folder)
    experiment = read_experiment(folder)
    plan = experiment_plan(folder)
    timings = read_timings(folder)
    scored = kaggle_records(ledger)
    rows = []
    for entry in experiment["runs"]:
        path = folder / entry["path"]
        summary = run_summary(path, scored)
        row = {"cell": entry["cell"], "seed": int(entry["seed"])}
        row.update({axis: format_value(entry["values"].get(axis)) for axis in plan.axis_names})
        if summary is None:
            row["status"] = "not started"
        else:
            row["status"] = "finished" if summary.pop("finished") else "partial"
            row.update({_run_column(plan, key): value for key, value in summary.items()})
        row["wall_seconds"] = timings.get(entry["path"])
        row["run_dir"] = entry["path"]
        rows.append(row)
    return plan, rows


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # repr: the exact float, read back unchanged
    return str(value)


def results_csv(plan: Plan, rows: list[dict[str, Any]]) -> str:
    columns = RESULT_COLUMNS[:2] + list(plan.axis_names) + [_run_column(plan, c) for c in RESULT_COLUMNS[2:]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    return buffer.getvalue()


def cell_stats(plan: Plan, rows: list[dict[str, Any]], key: str) -> dict[str, Stat | None]:
    """Per cell (in plan order), mean ± std over its finished seeds of the column `key`. An interrupted run's
    best epoch is an early one: averaged in, it moves the cell and can flip the ranking."""
    return {
        cell.name: stat(r.get(key) for r in rows if r["cell"] == cell.name and r["status"] == "finished")
        for cell in plan.cells()
    }


def markdown_table(plan: Plan, texts: Mapping[str, str], heading: str) -> list[str]:
    """`texts` (cell name -> text) laid out in the plan's table shape: rows x columns."""
    columns = columns_of(plan)
    corner = " \\ ".join(x for x in (" / ".join(plan.table_rows), plan.table_columns) if x) or "cell"
    header = [corner] + ([plan.label(plan.table_columns, c) for c in columns] if plan.table_columns else [heading])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in row_combos(plan):
        cells = [texts.get(cell_at(plan, row, c), "–") for c in columns]
        lines.append("| " + " | ".join([row_label(plan, row)] + cells) + " |")
    return lines


def _marked(
    stats: Mapping[str, Stat | None],
    best: str | None,
    planned: int | None,
    finished: Mapping[str, int],
    spread: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each cell's text; a cell with fewer finished seeds than planned says so in the table itself, and one with
    none finished has no value (and so no rank). `spread`: a cell's interval and n (noise.cell_intervals)."""
    texts = {}
    for cell, value in stats.items():
        done = finished.get(cell, 0)
        short = (spread or {}).get(cell, "")
        short += f" ({done} of {planned} seeds finished)" if planned and done < planned else ""
        if value is None:
            texts[cell] = "–" + short
        elif cell == best:
            texts[cell] = f"**{value.text()}{short}** {WINNER_MARK}"
        else:
            texts[cell] = value.text() + short
    return texts


@dataclass
class ReportResult:
    folder: Path
    files: list[Path]
    runs: int
    finished: int
    headlines: list[str] = field(default_factory=list)  # one line per table: its winner, by direction


def write_report(folder: Path | str, ledger=None) -> ReportResult:
    """(Re)write results.csv, report.md and the PNGs of an experiment folder from its run folders."""
    from ..submissions.ledger import Ledger

    folder = Path(folder)
    s = _summarise(folder, ledger if ledger is not None else Ledger())
    plan, rows, metric = s.plan, s.rows, s.metric
    lines = [f"# {plan.title or plan.name}", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += _about_lines(s)
    lines += _score_sections(s)
    lines += _side_by_side(plan, s.val, s.kaggle, s.published, metric, s.has_kaggle)
    lines += [
        "## Training curves",
        "",
        f"Mean over seeds (and a fold group's folds) per epoch, one line per {plan.curves_by or 'cell'} (from each "
        "run's history.csv).",
        "",
        f"![training curves]({CURVES_PNG})",
        "",
        f"![results]({TABLE_PNG})",
        "",
    ]
    lines += _wall_time_section(s)

    files = [folder / RESULTS_FILE, folder / REPORT_FILE, folder / TABLE_PNG, folder / CURVES_PNG, folder / WALL_PNG]
    atomic_write_text(folder / RESULTS_FILE, results_csv(plan, rows))
    atomic_write_bytes(folder / TABLE_PNG, table_png(plan, s.val, s.kaggle, s.published, metric, s.best_val))
    atomic_write_bytes(folder / CURVES_PNG, curves_png(plan, rows, folder, metric))
    atomic_write_bytes(folder / WALL_PNG, wall_png(plan, s.wall, s.train_seconds))
    atomic_write_text(folder / REPORT_FILE, "\n".join(lines) + "\n")
    return ReportResult(folder, files, len(rows), s.finished, s.headlines)


@dataclass
class _Summary:
    """What the report says about an experiment: each cell's figures and the best cell of each."""

    plan: Plan
    comp: Any
    rows: list[dict[str, Any]]
    experiment: dict[str, Any]
    val: dict[str, Stat | None]
    kaggle: dict[str, Stat | None]
    wall: dict[str, Stat | None]
    train_seconds: dict[str, Stat | None]
    published: Mapping[str, float]
    best_val: str | None
    best_kaggle: str | None
    best_published: str | None
    headlines: list[str] = field(default_factory=list)
    claim_note: str | None = None
    lead: Any = None  # the best cell's lead over the runner-up on shared validation images (study.noise)
    spread: dict[str, str] = field(default_factory=dict)  # each cell's interval and n (study.noise.cell_intervals)

    @property
    def metric(self) -> Metric:
        return self.comp.metric

    @property
    def has_kaggle(self) -> bool:
        return any(s is not None for s in self.kaggle.values())

    @property
    def finished(self) -> int:
        return sum(r["status"] == "finished" for r in self.rows)

    @property
    def finished_in(self) -> dict[str, int]:
        rows = self.rows
        return {
            cell.name: sum(r["cell"] == cell.name and r["status"] == "finished" for r in rows)
            for cell in self.plan.cells()
        }


def _summarise(folder: Path, ledger) -> _Summary:
    plan, rows = collect(folder, ledger)
    comp = resolve(plan.competition)
    metric = comp.metric
    val = cell_stats(plan, rows, "val_metric")
    kaggle = cell_stats(plan, rows, "kaggle_public")
    published = plan.published.values if plan.published else {}
    val_means = {c: st.mean if st else None for c, st in val.items()}
    best_val = winner(val_means, metric)
    lead = lead_over_runner_up(folder, rows, val_means, metric)
    if best_val and lead and not lead[2].a_wins:
        best_val = None  # a lead within the noise of the validation images is no win: nothing marked
    s = _Summary(
        plan=plan,
        comp=comp,
        rows=rows,
        experiment=read_experiment(folder),
        val=val,
        kaggle=kaggle,
        wall=cell_stats(plan, rows, "wall_seconds"),
        train_seconds=cell_stats(plan, rows, "train_seconds"),
        published=published,
        best_val=best_val,
        best_kaggle=winner({c: st.mean if st else None for c, st in kaggle.items()}, metric),
        best_published=winner(published, metric) if published else None,
        lead=lead,
        spread=cell_intervals(folder, rows, metric),
    )
    _add_headlines(s)
    return s


def _add_headlines(s: _Summary) -> None:
    metric, val, kaggle, published = s.metric, s.val, s.kaggle, s.published
    best_val, best_kaggle, best_published, plan = s.best_val, s.best_kaggle, s.best_published, s.plan
    direction = f"{metric.label}, {metric.direction}"
    headlines = s.headlines
    if best_val:
        headlines.append(
            f"validation {direction}: best {best_val} ({val[best_val].text()}{s.spread.get(best_val, '')})"
        )
    elif s.lead:
        headlines.append(f"validation {direction}: no win, {describe_lead(s.lead)}")
    elif leaders := tied({c: st.mean if st else None for c, st in val.items()}, metric):
        headlines.append(f"validation {direction}: {', '.join(leaders)} tie at {val[leaders[0]].text()}")
    if best_kaggle:
        headlines.append(f"Kaggle public score ({direction}): best {best_kaggle} ({kaggle[best_kaggle].text()})")
    if best_published:
        headlines.append(f"published ({direction}): best {best_published} ({published[best_published]:.4f})")
    if (
        plan.published
        and plan.published.claimed_best
        and best_published
        and plan.published.claimed_best != best_published
    ):
        claimed = plan.published.claimed_best
        s.claim_note = (
            f"The study called {claimed} ({published[claimed]:.4f}) the better one, ranking it above "
            f"{best_published} ({published[best_published]:.4f}); but for {metric.label} {metric.direction}, "
            f"so by the study's own numbers {best_published} won."
        )
        headlines.append(f"note: {s.claim_note}")


def _about_lines(s: _Summary) -> list[str]:
    """The experiment in a few bullets: competition and metric, plan and runs, overrides, how numbers are read."""
    plan, comp, metric, rows, experiment = s.plan, s.comp, s.metric, s.rows, s.experiment
    finished = s.finished
    partial = sum(r["status"] == "partial" for r in rows)
    overrides = {
        **({"epochs": experiment["epochs"]} if experiment.get("epochs") else {}),
        **(experiment.get("overrides") or {}),
    }
    lines = [
        f"- competition: {comp.title} (`{comp.name}`); metric: **{metric.label} - {metric.direction}**",
        f"- plan: `{plan.name}`, base recipe `{plan.recipe}`, {len(plan.cells())} cells x {experiment.get('seeds')} "
        f"seeds = {len(rows)} runs ({finished} finished, {partial} partial, {len(rows) - finished - partial} not "
        "started)",
    ]
    if plan.overrides:
        lines.append("- plan overrides: " + ", ".join(f"{k}={format_value(v)}" for k, v in plan.overrides.items()))
    if overrides:
        lines.append("- command-line overrides: " + ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items()))
    lines += [
        f"- numbers: mean ± sample standard deviation over the finished seeds (a cell short of them says how many "
        f"finished; unfinished runs are in {RESULTS_FILE} only); the best cell by the metric's direction is bold and "
        f"marked {WINNER_MARK}",
        "",
    ]
    return lines


def _score_sections(s: _Summary) -> list[str]:
    """Validation, Kaggle public (where submitted) and published tables, each with its best cell marked."""
    plan, metric, val, kaggle, published = s.plan, s.metric, s.val, s.kaggle, s.published
    seeds, finished_in = s.experiment.get("seeds"), s.finished_in
    lines = [
        f"## Validation {metric.label} (ours; {metric.direction})",
        "",
        "Best epoch of each run (the checkpoint `predict` uses), on its held-out validation split."
        + (
            " A fold group (the plan's `folds`) counts its out-of-fold (OOF) metric: every training image "
            "predicted by the fold that held it out."
            if plan.folds or FOLDS_KEY in plan.axis_names
            else ""
        ),
        "",
        *markdown_table(plan, _marked(val, s.best_val, seeds, finished_in, s.spread), f"validation {metric.label}"),
        "",
    ]
    note = seed_noise_note(val, metric)
    if note:
        lines += [f"Seed noise: {note}.", ""]
    if s.lead:
        lines += [f"Validation noise: {describe_lead(s.lead)}.", ""]
    if s.has_kaggle:
        lines += [
            f"## Kaggle public score (ours; {metric.label}, {metric.direction})",
            "",
            *markdown_table(plan, _marked(kaggle, s.best_kaggle, seeds, finished_in), "Kaggle public"),
            "",
        ]
        note = seed_noise_note(kaggle, metric)
        if note:
            lines += [f"Seed noise: {note}.", ""]
    if plan.published:
        what = plan.published.metric or metric.label
        lines += [f"## Published ({what}; {metric.direction})", ""]
        if plan.published.source:
            lines += [f"Source: {plan.published.source}. Single runs, no seeds.", ""]
        best = s.best_published
        texts = {c: (f"**{v:.4f}** {WINNER_MARK}" if c == best else f"{v:.4f}") for c, v in published.items()}
        lines += [*markdown_table(plan, texts, what), ""]
        if s.claim_note:
            lines += [f"**Note:** {s.claim_note}", ""]
    return lines


def _wall_time_section(s: _Summary) -> list[str]:
    lines = [
        "## Wall time per cell",
        "",
        "wall: the whole run as measured by `kaggle-kit experiment` (data, training, validation, calibration); "
        "training loop: the sum of history.csv's epoch seconds.",
        "",
        "| cell | finished runs | wall seconds | training loop seconds |",
        "|---|---|---|---|",
    ]
    for cell in s.plan.cells():
        runs = s.finished_in[cell.name]
        lines.append(
            f"| {cell.name} | {runs} | {_text(s.wall[cell.name], 1)} | {_text(s.train_seconds[cell.name], 1)} |"
        )
    lines += ["", f"![wall time]({WALL_PNG})", "", f"Every run: [{RESULTS_FILE}]({RESULTS_FILE}).", ""]
    return lines


def _text(value: Stat | None, digits: int = 4) -> str:
    return value.text(digits) if value is not None else "–"


def _side_by_side(plan, val, kaggle, published, metric: Metric, has_kaggle: bool) -> list[str]:
    if not published and not has_kaggle:
        return []
    ours = "Kaggle public" if has_kaggle else "validation"
    lines = [
        "## Side by side",
        "",
        f"{metric.label}, {metric.direction}; difference = ours ({ours}) - published.",
        "",
        "| cell | validation (ours) | "
        + ("Kaggle public (ours) | " if has_kaggle else "")
        + "published | difference |",
        "|---|---|" + ("---|" if has_kaggle else "") + "---|---|",
    ]
    for cell in plan.cells():
        mine = (kaggle if has_kaggle else val)[cell.name]
        theirs = published.get(cell.name)
        diff = f"{mine.mean - theirs:+.4f}" if mine is not None and theirs is not None else "–"
        row = [cell.name, _text(val[cell.name])] + ([_text(kaggle[cell.name])] if has_kaggle else [])
        row += [f"{theirs:.4f}" if theirs is not None else "–", diff]
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]
