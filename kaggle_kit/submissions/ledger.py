"""The submission ledger: one record per Kaggle submission, in `submissions/ledger.jsonl`.

The file is append-only JSON Lines. A submission writes a full record (`"event": "submit"`); later
news about it (the Kaggle ref, the status, the scores, an error) is appended as an `"update"` line
carrying the record's `id` and only the changed fields. Reading folds the lines per id in file order,
so no line is ever rewritten in place.

Why it is safe:
- Two processes submitting at once: every append takes an exclusive `fcntl.flock` on the ledger and
  writes its line with one `write` on an `O_APPEND` descriptor, so lines never interleave.
- A crash mid-write leaves at most one torn last line (no trailing newline). Readers skip lines
  that are not valid JSON; the next writer, under the lock, moves the torn bytes to
  `ledger.jsonl.torn` (kept for inspection, never parsed) and truncates them before appending, so
  the torn fragment can never glue onto a good record. Completed lines are fsynced before the lock
  is released.

The location is `$KAGGLE_KIT_SUBMISSIONS_DIR/ledger.jsonl`, else `submissions/ledger.jsonl` under the
working directory, or any path passed to `Ledger(path)`.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..core import faults
from ..core.errors import KitError

SUBMISSIONS_DIR_ENV = "KAGGLE_KIT_SUBMISSIONS_DIR"
LEDGER_NAME = "ledger.jsonl"
TORN_SUFFIX = ".torn"

# Status values: Kaggle's own (PENDING, COMPLETE, ERROR) plus the states before Kaggle knows the file.
UPLOADING = "UPLOADING"
UPLOAD_FAILED = "UPLOAD_FAILED"
UPLOAD_UNKNOWN = (
    "UPLOAD_UNKNOWN"  # the upload's answer was lost and Kaggle could not be asked: `submissions` settles it
)
PENDING = "PENDING"
COMPLETE = "COMPLETE"
ERROR = "ERROR"
FINAL_STATUSES = (COMPLETE, ERROR, UPLOAD_FAILED)


def default_submissions_dir() -> Path:
    return Path(os.environ.get(SUBMISSIONS_DIR_ENV) or "submissions")


def default_ledger_path() -> Path:
    return default_submissions_dir() / LEDGER_NAME


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def append_json_line(path: Path, entry: dict) -> None:
    """Append one JSON line under an exclusive lock, repairing a torn tail first (see the module docstring)."""
    # json.dumps escapes newlines inside strings, so the only newline is the terminator
    line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    number = faults.begin("ledger", path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _repair_torn_tail(path, fd)
        os.write(fd, line[: len(line) // 2])
        faults.at(number, "partial", path)
        view = memoryview(line)[len(line) // 2 :]
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        faults.at(number, "synced", path)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            _repair_torn_tail(path, fd)  # the half line written before the disk filled goes aside at once
        faults.raise_if_full(error, path, len(line))
        raise
    finally:
        os.close(fd)  # closing the descriptor releases the lock
    faults.at(number, "done", path)


def _repair_torn_tail(path: Path, fd: int) -> None:
    """Move a last line without its newline (a writer crashed mid-line) aside; caller holds the lock."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    block = 64 * 1024
    start = size
    cut = 0
    while start > 0:
        start = max(0, start - block)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            cut = start + newline + 1
            break
        end = start
    torn = os.pread(fd, size - cut, cut)
    with open(str(path) + TORN_SUFFIX, "ab") as aside:
        aside.write(torn + b"\n")
        aside.flush()
        os.fsync(aside.fileno())
    os.ftruncate(fd, cut)


def read_json_lines(path: Path) -> list[dict]:
    """Every complete JSON object line of `path` under a shared lock; torn or foreign lines are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    finally:
        os.close(fd)
    entries = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # a torn line left by a crash: never half-read
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


@dataclass
class LedgerRecord:
    """What kaggle-kit knows about one submission; `None` means not known (yet)."""

    id: str
    time: str  # when the submission was started, ISO 8601 UTC
    competition: str  # kaggle-kit's short name, e.g. dog_breed
    file: str
    sha256: str
    run: str | None = None  # run name (the run folder's name)
    run_dir: str | None = None
    recipe: str | None = None  # short recipe summary, e.g. "resnet18 fast e26 bs512 lr0.2 onecycle aug=modern"
    metric: str | None = None  # the competition metric's name
    local_score: float | None = None  # the run's validation score with that metric
    local_interval: dict | None = None  # its 95% bootstrap interval and n (value, low, high, n, groups)
    message: str | None = None  # the description sent to Kaggle
    kaggle_ref: int | None = None
    status: str = UPLOADING
    public_score: float | None = None
    private_score: float | None = None
    error: str | None = None
    updated: str | None = None
    # a code competition's submission is a notebook version reading a dataset version (`kaggle-kit push`)
    notebook: str | None = None  # owner/slug
    notebook_version: int | None = None
    dataset: str | None = None  # owner/slug
    dataset_version: int | None = None
    files: dict | None = None  # the dataset's file name -> sha256

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


_FIELDS = {f.name for f in dataclasses.fields(LedgerRecord)}


def _record_from(fields: dict) -> LedgerRecord | None:
    known = {k: v for k, v in fields.items() if k in _FIELDS}
    try:
        return LedgerRecord(**known)
    except TypeError:  # a submit line missing a required field: not ours, skip it
        return None


class Ledger:
    """Append-safe submission records; see the module docstring for the file format and its guarantees."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_ledger_path()

    # ------------------------------------------------------------------ writing

    def add(
        self,
        competition: str,
        file: Path | str,
        sha256: str,
        **fields,
    ) -> LedgerRecord:
        """Append a new record (status UPLOADING unless given) and return it."""
        unknown = set(fields) - _FIELDS
        if unknown:
            raise TypeError(f"unknown ledger fields: {', '.join(sorted(unknown))}")
        record = LedgerRecord(
            id=fields.pop("id", None) or uuid.uuid4().hex,
            time=fields.pop("time", None) or now_iso(),
            competition=competition,
            file=str(file),
            sha256=sha256,
            **fields,
        )
        record.updated = record.time
        self._append({"event": "submit", **dataclasses.asdict(record)})
        return record

    def update(self, record_id: str, **changes) -> None:
        """Append the changed fields of record `record_id` (folded over the record on read)."""
        unknown = set(changes) - _FIELDS - {"id"}
        if unknown:
            raise TypeError(f"unknown ledger fields: {', '.join(sorted(unknown))}")
        changes.pop("id", None)
        self._append({"event": "update", "id": record_id, **changes, "updated": now_iso()})
        if changes.get("public_score") is not None or changes.get("private_score") is not None:
            from ..training.tracking import log_kaggle_score

            record = self.get(record_id)  # a score as it arrives, into the run's MLflow / TensorBoard log if tracked
            log_kaggle_score(record.run_dir, record.public_score, record.private_score, record.kaggle_ref or 0)

    def _append(self, entry: dict) -> None:
        append_json_line(self.path, entry)

    # ------------------------------------------------------------------ reading

    def _lines(self) -> list[dict]:
        return [entry for entry in read_json_lines(self.path) if isinstance(entry.get("id"), str)]

    def records(self, competition: str | None = None) -> list[LedgerRecord]:
        """Every record, updates folded in, in the order the submissions were made."""
        folded: dict[str, dict] = {}
        for entry in self._lines():
            event = entry.pop("event", "update")
            if event == "submit":
                folded.setdefault(entry["id"], {}).update(entry)
            elif entry["id"] in folded:
                folded[entry["id"]].update(entry)
        records = [r for r in (_record_from(f) for f in folded.values()) if r is not None]
        if competition is not None:
            records = [r for r in records if r.competition == competition]
        return records

    def get(self, record_id: str) -> LedgerRecord:
        for record in self.records():
            if record.id == record_id:
                return record
        raise KitError(f"{self.path}: no submission record with id {record_id}")

    def by_ref(self, competition: str) -> dict[int, LedgerRecord]:
        """Records of one competition that Kaggle has given a ref, keyed by that ref."""
        return {r.kaggle_ref: r for r in self.records(competition) if r.kaggle_ref is not None}
