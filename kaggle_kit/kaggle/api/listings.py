"""`list_submissions`: Kaggle's submissions of a competition, every page, joined with the local ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ...competitions.registry import Competition
from ...submissions.ledger import COMPLETE, ERROR, PENDING, UPLOAD_UNKNOWN, UPLOADING, Ledger
from .client import _api, _competition, _kaggle_call, _quiet_stdout
from .submit import _score

LISTING_PAGE_SIZE = 100
LISTING_MAX_PAGES = 100  # 10,000 submissions: more than any competition allows a team


# =========================================================================== listing


@dataclass
class SubmissionRow:
    """One Kaggle submission with what the local ledger knows about it."""

    ref: int
    date: datetime | None
    file_name: str
    description: str
    status: str
    public_score: float | None
    private_score: float | None
    error: str | None = None
    run: str | None = None
    local_score: float | None = None
    sha256: str | None = None


def _every_submission(api, slug: str) -> list:
    """Every page of the competition's submissions. The client returns a page's submissions without the next
    page's token, so pages are asked for by number until one is short, or brings nothing new (a server that
    ignored the page number would otherwise answer the first page forever)."""
    listed: list = []
    seen: set[int] = set()
    for page in range(1, LISTING_MAX_PAGES + 1):
        with _quiet_stdout():
            chunk = [
                s
                for s in api.competition_submissions(slug, page_number=page, page_size=LISTING_PAGE_SIZE) or []
                if s is not None
            ]
        new = [s for s in chunk if int(s.ref) not in seen]
        listed += new
        seen.update(int(s.ref) for s in new)
        if len(chunk) < LISTING_PAGE_SIZE or not new:
            break
    return listed


def list_submissions(competition: Competition | str, ledger: Ledger | None = None) -> list[SubmissionRow]:
    """Kaggle's submissions for the competition (newest first) joined with the ledger by Kaggle ref.

    Ledger records still waiting for a score are updated with what Kaggle reports now.
    """
    comp = _competition(competition)
    ledger = ledger or Ledger()
    api = _api()
    with _kaggle_call(f"listing submissions of {comp.slug}", comp):
        listed = _every_submission(api, comp.slug)
    known = ledger.by_ref(comp.name)
    # a submit that died between the upload and writing Kaggle's ref: found again by its file and message
    orphans = [r for r in ledger.records(comp.name) if r.kaggle_ref is None and r.status in (UPLOADING, UPLOAD_UNKNOWN)]
    rows = []
    for item in listed:
        if item is None:
            continue
        if int(item.ref) not in known:
            for orphan in orphans:
                if orphan.message == (item.description or "") and Path(orphan.file).name == (item.file_name or ""):
                    ledger.update(orphan.id, kaggle_ref=int(item.ref))
                    orphan.kaggle_ref = int(item.ref)
                    known[orphan.kaggle_ref] = orphan
                    orphans.remove(orphan)
                    break
        status = item.status.name if item.status is not None else PENDING
        row = SubmissionRow(
            ref=int(item.ref),
            date=item.date,
            file_name=item.file_name or "",
            description=item.description or "",
            status=status,
            public_score=_score(item.public_score),
            private_score=_score(item.private_score),
            error=(item.error_description or None),
        )
        record = known.get(row.ref)
        if record is not None:
            row.run, row.local_score, row.sha256 = record.run, record.local_score, record.sha256
            news = {}
            if record.status != status and (
                status in (COMPLETE, ERROR) or record.status in (UPLOADING, UPLOAD_UNKNOWN)
            ):
                news["status"] = status
            if row.public_score is not None and record.public_score != row.public_score:
                news["public_score"] = row.public_score
            if row.private_score is not None and record.private_score != row.private_score:
                news["private_score"] = row.private_score
            if status == ERROR and row.error and record.error != row.error:
                news["error"] = row.error
            if news:
                ledger.update(record.id, **news)
        rows.append(row)
    return rows
