"""`kaggle-kit experiment`, `report` and `runs`: plans of many runs, their report, and every run at a glance."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _print_event(event: dict[str, Any]) -> None:
    """Progress lines on stderr: run k/n, what happened, elapsed and ETA; the whole plan's every so often."""
    if event["event"] == "plan":
        print(
            f"plan: {event['epochs_done']}/{event['epochs_total']} epochs, "
            f"{event['runs_done']}/{event['runs_total']} runs done, elapsed {_clock(event['elapsed_s'])}, "
            f"plan eta {_clock(event['eta_s'])}",
            file=sys.stderr,
            flush=True,
        )
        return
    kind, run = event["event"], event["run"] + (f" fold {event['fold']}" if event.get("fold") else "")
    where = f"{event['index']}/{event['total']}" if "index" in event else ""
    eta = f" eta {_clock(event.get('eta_s'))}" if event.get("eta_s") is not None else ""
    slot = str(event.get("gpu"))
    gpu = "" if event.get("gpu") is None else f" on {slot}" if slot.startswith("Ray") else f" on GPU {slot}"
    if kind == "start":
        log = f", log {event['log']}" if event.get("log") else ""
        line = f"run {where} {run}: {'resuming' if event.get('resume') else 'training'}{gpu}{log}{eta}"
    elif kind == "progress":
        line = f"run {run}{gpu}: {event['line']}"
    elif kind == "skip":
        line = f"run {where} {run}: already finished, skipped"
    elif kind == "done":
        line = f"run {where} {run}: done in {_clock(event['seconds'])} (elapsed {_clock(event['elapsed_s'])}{eta})"
    elif kind == "failed":
        line = f"run {where} {run}: FAILED: {event['error']}"
    elif kind == "submitted":
        score = event.get("public_score")
        line = f"run {run}: submitted, Kaggle public score {'not published' if score is None else f'{score:.5f}'}"
    elif kind == "submit-failed":
        line = f"run {run}: not submitted ({event['error']}); no further uploads this time"
    elif kind == "interrupted":
        line = f"run {run}: interrupted"
    else:
        line = f"run {run}: {kind}"
    print(line, file=sys.stderr, flush=True)


def _print_quiet_event(event: dict[str, Any]) -> None:
    """`--quiet`: what went wrong or reached Kaggle; no run starts, epochs or plan ETAs."""
    if event["event"] in ("failed", "submitted", "submit-failed", "interrupted"):
        _print_event(event)


def experiment(
    plan: str = typer.Argument(
        ..., metavar="PLAN", help="a plan file, or a plan name such as study-table2 (or cifar10/study-table2)"
    ),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", metavar="DIR", help="the competition's data folder or download (default data/<slug>)"
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="DIR", help="experiment folder (default experiments/<plan name>)"
    ),
    epochs: Optional[int] = typer.Option(
        None, "--epochs", min=1, metavar="N", help="epochs of every run instead of the plan's"
    ),
    seeds: Optional[int] = typer.Option(
        None, "--seeds", min=1, metavar="K", help="runs per cell instead of the plan's (seeds 0..K-1)"
    ),
    submit: bool = typer.Option(
        False, "--submit", help="predict each finished run and submit it to Kaggle; scores go to the ledger"
    ),
    gpus: Optional[str] = typer.Option(
        None, "--gpus", metavar="IDS", help="comma-separated GPU ids, e.g. 0,1,2,3: one run per GPU at a time"
    ),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="ADDRESS", help="each run a task on this Ray cluster (auto: the one `ray start` began)"
    ),
    assignments: Optional[list[str]] = typer.Option(
        None, "--set", metavar="KEY=VALUE", help="recipe setting for every run, e.g. --set lr=0.05 (repeatable)"
    ),
    track: Optional[list[str]] = typer.Option(
        None,
        "--track",
        metavar="mlflow|tensorboard",
        help="log every run to MLflow or TensorBoard, under the plan's name (repeatable)",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", help="only failures, submissions and the summary (each run's log keeps its progress lines)"
    ),
) -> None:
    """Run every cell x seed of a plan as a normal run folder (finished runs are skipped), then write the report."""
    from ..api.study import experiment as run_experiment
    from . import fail

    on_event = _print_quiet_event if quiet else _print_event
    result = run_experiment(plan, data_dir, out, epochs, seeds, submit, gpus, assignments, track, on_event, ray)
    print(
        f"{result.plan} ({result.competition}): {result.runs} runs - {len(result.trained)} trained, "
        f"{len(result.resumed)} resumed, {len(result.skipped)} skipped (already finished), {len(result.failed)} failed "
        f"in {_clock(result.seconds)}"
    )
    if submit:
        print(f"submitted {len(result.submitted)}, not submitted {len(result.not_submitted)}")
        for run, why in result.not_submitted.items():
            print(f"  not submitted {run}: {why}")
    for line in result.report.headlines:
        print(line)
    print(f"report: {result.folder / 'report.md'}")
    if result.interrupted:
        fail(
            "interrupted; rerun the same command to continue (finished runs are skipped, the stopped one resumes)", 130
        )
    if result.failed:
        run, error = next(iter(result.failed.items()))
        fail(
            f"{len(result.failed)} of {result.runs} runs failed (first: {run}: {error}); fix it and rerun "
            "the same command to retry them",
            1,
        )


def report(
    folder: Path = typer.Argument(..., metavar="EXPERIMENT_DIR", help="a folder made by `kaggle-kit experiment`"),
    ledger: Optional[Path] = typer.Option(
        None,
        "--ledger",
        metavar="FILE",
        help="submission ledger with the Kaggle scores (default submissions/ledger.jsonl)",
    ),
) -> None:
    """Rebuild an experiment's report (results.csv, report.md, PNGs) from its run folders, without training."""
    from ..study.report import write_report
    from ..submissions.ledger import Ledger

    result = write_report(folder, ledger=Ledger(ledger) if ledger else None)
    print(f"{result.runs} runs ({result.finished} finished)")
    for line in result.headlines:
        print(line)
    for path in result.files:
        print(f"wrote {path}")


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def runs(
    competition: Optional[str] = typer.Argument(
        None, metavar="COMPETITION", help="only this competition's runs (cifar10, dog_breed, a slug or URL)"
    ),
    roots: Optional[list[Path]] = typer.Option(
        None, "--root", metavar="DIR", help="folder to search (repeatable; default runs and experiments)"
    ),
    ledger: Optional[Path] = typer.Option(
        None,
        "--ledger",
        metavar="FILE",
        help="submission ledger with the Kaggle scores (default submissions/ledger.jsonl)",
    ),
) -> None:
    """List run folders: arch, recipe, epochs, best validation metric (with its direction) and Kaggle score."""
    from ..api.study import list_runs, searched_roots
    from ..competitions.registry import resolve
    from ..submissions.provenance import epochs_text

    searched = searched_roots(roots)

    def damaged(path: Path, why: str) -> None:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)

    found = list_runs(competition, searched, ledger, damaged)
    if not found:
        print(
            f"no runs{' of ' + resolve(competition).name if competition else ''} under {', '.join(map(str, searched))}"
        )
        return
    header = ("run", "competition", "arch", "epochs", "validation", "kaggle", "settings", "recipe")
    table = [
        (
            r["run_dir"],
            r["competition"],
            str(r["arch"]),
            epochs_text(r),
            _validation_text(r),
            _number(r["kaggle_public"], 5),
            r["settings"],
            r["recipe"] or "",
        )
        for r in found
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header[:-1])]
    for row in [header, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    for name in sorted({r["competition"] for r in found}):
        metric = resolve(name).metric
        # a run's figure is its best epoch's, before calibration; a group's OOF is at its fitted temperature,
        # which moves log loss: said, so the two are not compared as like for like
        uncalibrated, at = (" (uncalibrated)", " at its OOF temperature") if metric.uses_temperature else ("", "")
        grouped = any(r["competition"] == name and r.get("kind") == "group" for r in found)
        group_note = f"; a fold group's: OOF {metric.label}{at}" if grouped else ""
        print(
            f"{name}: validation = what predict submits, with its 95% bootstrap interval and n, where calibrated "
            f"(else best epoch's {metric.label}{uncalibrated}){group_note}, kaggle = public score; "
            f"{metric.label}: {metric.direction}; "
            f"settings: weights, backbone, image size, and the TTA and temperature predict applies to best.pt"
        )


def _validation_text(row: dict) -> str:
    """The figure predict's submission stands on (calibrated, cross-fitted) with its interval, where measured."""
    from ..competitions.bootstrap import Interval

    interval = Interval.from_dict(row.get("val_interval"))
    return str(interval) if interval is not None else _number(row["val_metric"])


def register(app: typer.Typer) -> None:
    app.command()(experiment)
    app.command()(report)
    app.command()(runs)
