"""`kaggle-kit download`, `submit`, `submissions` (alias `scores`) and `doctor`: Kaggle through its official client."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional

import typer

COMPETITION_HELP = "cifar10, dog_breed, a slug or a pasted competition URL"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.5f}"


def download(
    competition: str = typer.Argument(..., help=COMPETITION_HELP),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="where to put <slug>.zip and its contents (default data/<slug>)"
    ),
    force: bool = typer.Option(False, "--force", help="download again even when a verified copy is there"),
) -> None:
    """Download the competition's data bundle once with the official Kaggle client, verify it and unpack it."""
    from ..api.remote import download as fetch

    result = fetch(competition, data_dir, force)
    what = result.archive.name if result.archive else "the unpacked data"
    if result.downloaded:
        print(f"downloaded {what} ({result.size / 1e6:.1f} MB) to {result.data_dir}")
    else:
        print(f"already downloaded: {what} in {result.data_dir} (use --force to fetch again)")
    print(
        f"{result.competition.slug}: {result.n_train} training images, {result.n_test} test images, "
        f"{result.n_classes} classes in {result.root}"
    )


def submit(
    file: Path = typer.Argument(..., help="the submission CSV, e.g. submissions/dog_breed/<run>.csv"),
    competition: Optional[str] = typer.Option(
        None, "--competition", "-c", help=f"{COMPETITION_HELP} (default: from the file's run or folder)"
    ),
    message: Optional[str] = typer.Option(
        None, "--message", "-m", help="submission description (default: run name, short config and file hash)"
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="wait for Kaggle's score"),
    timeout: float = typer.Option(1800.0, "--timeout", help="seconds to wait for the score"),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", help="data folder holding the sample submission to check against"
    ),
    run: Optional[Path] = typer.Option(
        None, "--run", help="the run folder that made the file (default: found from the file name)"
    ),
) -> None:
    """Check a submission, upload it with the official client, wait for the score and record it in the ledger."""
    from ..api.remote import submit as send

    result = send(file, competition, message, wait, timeout, data_dir, run)
    metric = result.competition.metric
    print(f"submitted {result.file} to {result.competition.slug} as submission {result.ref}")
    print(f"  message: {result.message}")
    if result.run.local_score is not None:
        from ..competitions.bootstrap import describe_figure

        figure = describe_figure(metric, result.run.local_interval, result.run.local_score)
        print(f"  local validation {figure} (run {result.run.name})")
    if result.left_today is not None:
        print(f"  {result.left_today} submission{'' if result.left_today == 1 else 's'} left today")
    if not wait:
        print(f"  not waiting for the score: see it with `kaggle-kit submissions {result.competition.name}`")
        return
    scores = f"  public score {_number(result.public_score) or 'not published'} ({metric.label} - {metric.direction})"
    if result.private_score is not None:
        scores += f", private score {_number(result.private_score)}"
    print(scores)


COLUMNS = ("ref", "date", "file", "status", "public", "private", "local", "run", "description")


def submissions(
    competition: str = typer.Argument(..., help=COMPETITION_HELP),
    as_csv: bool = typer.Option(False, "--csv", help="comma-separated output for machines"),
) -> None:
    """Past submissions from Kaggle beside the local ledger: run and local validation score next to the
    leaderboard scores."""
    from ..competitions.registry import resolve
    from ..kaggle.api import list_submissions

    comp = resolve(competition)
    rows = list_submissions(comp)
    table = [
        (
            str(r.ref),
            r.date.strftime("%Y-%m-%d %H:%M") if r.date else "",
            r.file_name,
            r.status if not r.error else f"{r.status}: {r.error}",
            _number(r.public_score),
            _number(r.private_score),
            _number(r.local_score),
            r.run or "",
            r.description,
        )
        for r in rows
    ]
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(table)
        return
    if not table:
        print(f"no submissions to {comp.slug} yet")
        return
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(COLUMNS[:-1])]
    for row in [COLUMNS, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    print(f"{comp.metric.label}: {comp.metric.direction}; local = the run's validation score")
    _print_tracking(rows, comp.metric)


def _print_tracking(rows, metric) -> None:
    """How local validation has tracked the public score, and the two candidates for the final selection."""
    from ..submissions.trust import Scored, track

    scored = [Scored(r.run, r.local_score, r.public_score) for r in rows if r.run and r.local_score is not None]
    if not scored:
        return
    found = track(scored, metric)
    if found.rank_correlation is None:
        print(f"local vs public: {found.pairs} scored submission(s) with a validation score - too few to rank")
    else:
        print(
            f"local vs public: rank correlation {found.rank_correlation:+.2f} over {found.pairs} submissions "
            f"(+1: validation orders runs as the public leaderboard does)"
        )
    for item in found.furthest:
        print(
            f"  furthest: {item.run}: public {_number(item.public)} vs local {_number(item.local)} "
            f"({item.public - item.local:+.5f})"
        )
    names = ", ".join(f"{c.run} (local {_number(c.local)})" for c in found.candidates)
    print(f"final selection candidates by local validation: {names}")


def doctor(
    competition: Optional[str] = typer.Option(
        None,
        "--competition",
        "-c",
        help=f"check access to this one ({COMPETITION_HELP}); default: every known competition",
    ),
) -> None:
    """Check the Kaggle setup: versions, credentials (never shown), file permissions, proxies, one signed-in call."""
    from ..kaggle.api import doctor as run_checks
    from . import fail

    checks = run_checks(competition)
    marks = {True: "ok  ", False: "FAIL", None: "    "}
    for check in checks:
        print(f"{marks[check.ok]} {check.name}: {check.detail}")
        if check.fix:
            print(f"     fix: {check.fix}")
    failed = [c.name for c in checks if c.ok is False]
    if failed:
        fail(
            f"{len(failed)} check{'s' if len(failed) > 1 else ''} failed ({', '.join(failed)}): apply the fixes above",
            1,
        )


def leaderboard(
    competition: str = typer.Argument(..., help=COMPETITION_HELP),
    top: int = typer.Option(10, "--top", min=1, help="how many of the leading teams to show"),
    team: Optional[str] = typer.Option(
        None, "--team", help="your team's name on the leaderboard (default: your user name)"
    ),
) -> None:
    """The public leaderboard's top teams, where you stand, and how many submissions Kaggle allows you today."""
    from ..kaggle.api.leaderboard import leaderboard as read

    board = read(competition, top, team)
    metric = board.competition.metric
    print(f"{board.competition.slug} public leaderboard ({metric.label} - {metric.direction}), {board.teams} teams:")
    for row in board.top:
        print(f"  {row.rank:>5}  {_number(row.score):>9}  {row.team}")
    if board.mine is None:
        print(f"you: {board.team or 'your team'} is not on the leaderboard yet (pass --team if it has another name)")
    else:
        mine = board.mine
        print(f"you: rank {mine.rank} of {board.teams}, public score {_number(mine.score)} ({mine.team})")
    if board.left_today is not None:
        print(f"submissions left today: {board.left_today}")


def register(app: typer.Typer) -> None:
    app.command()(leaderboard)
    app.command()(download)
    app.command()(submit)
    app.command()(submissions)
    app.command("scores", help="Alias of `submissions`.")(submissions)
    app.command()(doctor)
