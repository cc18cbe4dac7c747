"""A stand-in for Kaggle's competition API on loopback, speaking the wire protocol of kaggle 2.2.5 / kagglesdk 0.1.38.

What the installed client sends and expects (kagglesdk/kaggle_http_client.py, competitions/services and
competitions/types/competition_api_service.py, kaggle/api/kaggle_api_extended.py):

- Every API call is `POST <base>/api/v1/<service>/<Method>` with a JSON body of the request type's
  camelCase fields (defaults left out) and credentials as HTTP Basic `username:key` (legacy key) or
  `Authorization: Bearer <token>`. The answer is the response type's camelCase JSON; enums travel as
  their names ("PENDING", "COMPLETE", "ERROR"), datetimes as ISO 8601 with a `Z`, and
  `publicScore`/`privateScore` as strings. Errors are `{"code": N, "message": ...}` with HTTP status N
  and `Content-Type: application/json` (the client raises `requests.HTTPError(message)` from them).
- `DownloadDataFiles {competitionName}` answers with a redirect to the bundle; `requests` follows it
  and the client names the saved file `<competition>.<extension of the redirect target>`, honouring
  `Content-Length`, `Last-Modified`, `ETag` and `Accept-Ranges` (for resuming with `Range`).
- `StartSubmissionUpload {competitionName, fileName, contentLength, lastModifiedEpochSeconds}` ->
  `{token, createUrl}`; the client then `PUT`s the file to `createUrl` with chunked transfer encoding
  and no credentials (a signed URL on Kaggle), expecting 200 or 201; then
  `CreateSubmission {competitionName, blobFileTokens, submissionDescription}` -> `{message, ref}`.
- `GetSubmission {ref}` and `ListSubmissions {competitionName, sortBy, group, page, pageSize}` ->
  `ApiSubmission` objects; `GetSubmissionLimits`, `ListDataFiles` and
  `security.OAuthService/IntrospectToken` (used by token sign-in) are served too.
- `ListCompetitions {search}` -> `{competitions: [ApiCompetition]}` with `evaluationMetric` (the server's
  `evaluation_metric`, else the metric in words), `isKernelsSubmissionsOnly` (the server's `code_competition`)
  and `maxDailySubmissions`; `GetLeaderboard {competitionName}` -> the public leaderboard's
  `{submissions: [{teamId, teamName, submissionDate, score}]}`, the user's best public score among the other teams'.
- Datasets: `blobs.BlobApiService/StartBlobUpload {type, name, contentLength}` -> `{token, createUrl}`, the
  file PUT there; `datasets.DatasetApiService/CreateDataset {ownerSlug, slug, title, files: [{token}]}` and
  `CreateDatasetVersion {ownerSlug, datasetSlug, body: {files, versionNotes}}` -> `{ref, url, status, error}`;
  `GetDatasetStatus` -> `{status}` (a `DatabundleVersionStatus` name: not READY for `dataset_delay` seconds
  after each version), `GetDataset` -> `{currentVersionNumber, ...}`. A slug of another owner is a 403.
- Notebooks: `kernels.KernelsApiService/SaveKernel {slug, text, datasetDataSources, competitionDataSources,
  enableInternet, ...}` -> `{ref, url, versionNumber, error}`; the server then really runs the script, as
  Kaggle does: a fresh `python` with no PYTHONPATH, pip's index unreachable, the attached datasets' latest
  versions under `<input>/<dataset-slug>/` and the competition's unpacked bundle under
  `<input>/<competition-slug>/` (`KAGGLE_KIT_INPUT_ROOT`), the working folder as `KAGGLE_KIT_WORKING_DIR`,
  killed after `kernel_timeout` seconds. `GetKernelSessionStatus {userName, kernelSlug, versionLabel}` ->
  `{status, failureMessage}` (`KernelWorkerStatus`: QUEUED, RUNNING, COMPLETE, ERROR);
  `ListKernelSessionOutput` -> `{files: [{url, fileName}], log}`, each file served at its url.
  `GetKernel {userName, kernelSlug}` -> `{metadata: {ref, slug, currentVersionNumber}, blob: {source}}`, 404
  before the first push.
- `CreateCodeSubmission {competitionName, kernelOwner, kernelSlug, kernelVersion, fileName}` -> `{message,
  ref}`: that version's output file becomes a submission, scored like any other; 400 for a CSV competition.

Submissions stay PENDING for `score_delay` seconds, then are scored against the hidden answers with the
competition's metric (kaggle_kit.submissions.files.score, which uses `comp.metric`): the public score on the
first half of the answer ids, the private on the rest. A file whose header or rows differ from the
sample submission ends in ERROR with a reason, as on Kaggle.

Faults on request (tests call the methods; by hand, the command-line flags): any status for a method
(`fail`), with `Retry-After` for 429; a slow answer (`delay`); the next submission ending in ERROR with a
given reason (`error_next_submission`); a script of faults for a method's next calls (`script`: statuses, a
TCP reset, an answer that never comes, each before or after the request is carried out). Method names are the
API methods (`DownloadDataFiles`, `StartSubmissionUpload`, ...) plus `download` (the bundle GET) and `upload`
(the PUT); `*` is all.

By hand:  python tests/kaggle_server.py --competition dog_breed --bundle DIR --port 8765
(DIR holds `<slug>.zip` and `answers.csv` from `kaggle-kit sample`; generated there when missing.)
See docs/kaggle-dry-run.md for the whole loop.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import io
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from kaggle_kit.competitions.registry import Competition, resolve
from kaggle_kit.core.errors import KitError

COMPETITIONS_SERVICE = "competitions.CompetitionApiService"
OAUTH_SERVICE = "security.OAuthService"
SERVICES = (COMPETITIONS_SERVICE, "blobs.BlobApiService", "datasets.DatasetApiService", "kernels.KernelsApiService")
LEADERBOARD = (("kk-rival-a", 0.98), ("kk-rival-b", 0.71), ("kk-rival-c", 0.42))  # the other teams' public scores
DEFAULT_USERNAME = "kk-test-user"
DEFAULT_KEY = "kk-test-key-0123456789abcdef"
DAILY_LIMIT = 5
FIRST_REF = 40_000_001


def _iso(moment: datetime) -> str:
    """kagglesdk's DateTimeSerializer format: naive UTC, milliseconds, a trailing Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


@dataclass
class Fault:
    status: int
    message: str
    retry_after: str | None = None
    times: int | None = None  # None: every time


@dataclass
class Submission:
    ref: int
    competition: str
    file_name: str
    description: str
    data: bytes
    date: datetime
    ready_at: float
    status: str = "PENDING"
    public_score: str = ""
    private_score: str = ""
    error: str = ""
    forced_error: str | None = None
    past: bool = False  # made before the test (add_past_submissions): not counted against today's limit

    def as_json(self) -> dict:
        body = {
            "ref": self.ref,
            "totalBytes": len(self.data),
            "date": _iso(self.date),
            "description": self.description,
            "fileName": self.file_name,
            "status": self.status,
            "submittedBy": DEFAULT_USERNAME,
            "teamName": DEFAULT_USERNAME,
            "url": f"/submissions/{self.ref}/{self.file_name}",
        }
        if self.status == "COMPLETE":
            body["publicScore"], body["privateScore"] = self.public_score, self.private_score
        if self.status == "ERROR":
            body["errorDescription"] = self.error
        return body


@dataclass
class Dataset:
    owner: str
    slug: str
    versions: list[Path] = field(default_factory=list)  # each version's folder of files
    ready_at: float = 0.0


@dataclass
class KernelVersion:
    owner: str
    slug: str
    number: int
    folder: Path  # script.py, input/, working/, log.txt
    metadata: dict
    status: str = "QUEUED"
    failure: str = ""
    log: str = ""


@dataclass
class _State:
    comp: Competition
    bundle: bytes
    bundle_mtime: float
    workdir: Path
    username: str
    key: str
    token: str | None
    score_delay: float
    faults: dict[str, Fault] = field(default_factory=dict)
    scripts: dict[str, list[str]] = field(default_factory=dict)  # method -> the steps its next calls take
    hang_s: float = 5.0
    delays: dict[str, float] = field(default_factory=dict)
    delay_times: dict[str, int | None] = field(default_factory=dict)
    uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # token -> (file name, bytes)
    submissions: list[Submission] = field(default_factory=list)
    next_error: str | None = None
    pages_ignored: bool = False
    code_competition: bool = False
    evaluation_metric: str = ""  # the listing's name for the metric; "" says the declaration's metric in words
    dataset_delay: float = 0.3
    kernel_timeout: float = 600.0
    daily_limit: int = DAILY_LIMIT
    datasets: dict[str, Dataset] = field(default_factory=dict)  # "owner/slug" -> the dataset
    kernels: dict[str, list[KernelVersion]] = field(default_factory=dict)  # "owner/slug" -> its versions
    taken_slugs: set = field(default_factory=set)  # "owner/slug" of other users' datasets and notebooks
    calls: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test, a stopped upload) leaves the handler writing to a closed socket. The
    default prints that traceback to stderr from the server's thread, where it lands in whatever output a test is
    capturing at that moment (an in-process CLI call's stderr, asserted to hold no traceback)."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class KaggleServer:
    """The fake Kaggle: `with KaggleServer(comp, bundle_dir) as server:` then point the client at `server.url`."""

    def __init__(
        self,
        competition: Competition | str,
        bundle_dir: Path | str,
        username: str = DEFAULT_USERNAME,
        key: str = DEFAULT_KEY,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        score_delay: float = 0.3,
        code_competition: bool = False,
        dataset_delay: float = 0.3,
        kernel_timeout: float = 600.0,
        daily_limit: int = DAILY_LIMIT,
        evaluation_metric: str = "",
    ):
        comp = competition if isinstance(competition, Competition) else resolve(competition)
        bundle_dir = Path(bundle_dir)
        zip_path = bundle_dir / comp.archive_name
        answers = bundle_dir / "answers.csv"
        if not zip_path.is_file() or not answers.is_file():
            raise FileNotFoundError(
                f"{bundle_dir} needs {comp.archive_name} and answers.csv: "
                f"run `kaggle-kit sample {comp.name} {bundle_dir}`"
            )
        workdir = Path(tempfile.mkdtemp(prefix="kaggle-server-"))
        self._state = _State(
            comp=comp,
            bundle=zip_path.read_bytes(),
            bundle_mtime=zip_path.stat().st_mtime,
            workdir=workdir,
            username=username,
            key=key,
            token=token,
            score_delay=score_delay,
            code_competition=code_competition,
            dataset_delay=dataset_delay,
            kernel_timeout=kernel_timeout,
            daily_limit=daily_limit,
            evaluation_metric=evaluation_metric,
        )
        self._prepare_scoring(answers)
        self._httpd = _QuietServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self._state
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ setup

    def _prepare_scoring(self, answers_path: Path) -> None:
        state = self._state
        comp = state.comp
        with zipfile.ZipFile(io.BytesIO(state.bundle)) as zf:
            names = {n.rsplit("/", 1)[-1]: n for n in zf.namelist()}
            if comp.sample_file in names:
                sample = zf.read(names[comp.sample_file])
            else:  # older downloads nest the sample in its own zip
                with zipfile.ZipFile(io.BytesIO(zf.read(names[comp.sample_file + ".zip"]))) as inner:
                    sample = inner.read(comp.sample_file)
        (state.workdir / comp.sample_file).write_bytes(sample)
        answers = pd.read_csv(answers_path, dtype=str, na_filter=False)
        half = (len(answers) + 1) // 2
        answers.iloc[:half].to_csv(state.workdir / "public.csv", index=False)
        answers.iloc[half:].to_csv(state.workdir / "private.csv", index=False)

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def calls(self) -> Counter:
        return self._state.calls

    @property
    def submissions(self) -> list[Submission]:
        return list(self._state.submissions)

    def fail(
        self,
        method: str,
        status: int,
        message: str | None = None,
        retry_after: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer `method` (or `*`) with HTTP `status` and Kaggle's error JSON, `times` times (default: always)."""
        self._state.faults[method] = Fault(status, message or _default_message(status), retry_after, times)

    def script(self, method: str, steps: list[str], hang_s: float = 5.0) -> None:
        """The next calls of `method` (or `*`) take `steps` in turn, then calls are answered as usual. A step is
        `ok`; a status such as `500`, or `429@1` with `Retry-After: 1`; `reset` (the connection is dropped with a
        TCP reset); `hang` (no answer for `hang_s` seconds, then the connection is dropped). `done-` before a
        fault (`done-reset`, `done-hang`, `done-500`) carries out the request first, then fails to answer: the
        answer lost on its way back, with Kaggle's side effect made."""
        for step in steps:
            _parse_step(step)  # a typo fails here, not halfway through a test
        self._state.scripts[method] = list(steps)
        self._state.hang_s = hang_s

    def delay(self, method: str, seconds: float, times: int | None = None) -> None:
        """Answer `method` (or `*`) `seconds` late, `times` times (default: always)."""
        self._state.delays[method] = seconds
        self._state.delay_times[method] = times

    def add_past_submissions(self, count: int) -> list[int]:
        """`count` scored submissions made before this test (a long competition's history); their refs."""
        made = []
        with self._state.lock:
            for _ in range(count):
                ref = next(_refs)
                self._state.submissions.append(
                    Submission(
                        ref=ref,
                        competition=self._state.comp.slug,
                        file_name=f"old-{ref}.csv",
                        description=f"old {ref}",
                        data=b"id,label\n",
                        date=datetime.now(UTC),
                        ready_at=0.0,
                        status="COMPLETE",
                        public_score="0.50000",
                        private_score="0.50000",
                        past=True,
                    )
                )
                made.append(ref)
        return made

    def ignore_pages(self) -> None:
        """Answer every ListSubmissions with the first page, whatever page is asked for."""
        self._state.pages_ignored = True

    def error_next_submission(self, reason: str) -> None:
        """The next submission is scored as ERROR with `reason` as its errorDescription."""
        self._state.next_error = reason

    def take_slug(self, ref: str) -> None:
        """Make `owner/slug` (a dataset or notebook) belong to someone else: creating or pushing it is refused."""
        self._state.taken_slugs.add(ref)

    def kernel_versions(self, ref: str) -> list[KernelVersion]:
        return list(self._state.kernels.get(ref, []))

    def clear(self) -> None:
        self._state.faults.clear()
        self._state.scripts.clear()
        self._state.delays.clear()
        self._state.next_error = None

    def expected_scores(self, path: Path | str) -> tuple[float, float]:
        """The (public, private) scores this server gives the file."""
        return _score_file(self._state, Path(path).read_bytes())

    def start(self) -> KaggleServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        shutil.rmtree(self._state.workdir, ignore_errors=True)

    def __enter__(self) -> KaggleServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _default_message(status: int) -> str:
    return {
        401: "Unauthenticated",
        403: "You must accept this competition's rules before you'll be able to submit or download files.",
        404: "Not found",
        429: "Too many requests",
        500: "Internal server error",
        503: "Service unavailable",
    }.get(status, "Request failed")


def _score_file(state: _State, data: bytes) -> tuple[float, float]:
    from kaggle_kit.submissions.files import score

    path = state.workdir / f"scoring-{hashlib.sha256(data).hexdigest()[:16]}-{threading.get_ident()}.csv"
    path.write_bytes(data)
    try:
        return (
            score(path, state.workdir / "public.csv", state.comp),
            score(path, state.workdir / "private.csv", state.comp),
        )
    finally:
        path.unlink(missing_ok=True)


def _kaggle_check(state: _State, data: bytes) -> str | None:
    """Kaggle's own refusals: header and ids must match the sample. Returns the reason, or None."""
    comp = state.comp
    sample = pd.read_csv(state.workdir / comp.sample_file, dtype=str, na_filter=False)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, na_filter=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return "Could not parse the submission file as CSV."
    if list(frame.columns) != list(sample.columns):
        return (
            "Submission column names do not match the sample submission: "
            f"expected {','.join(list(sample.columns)[:4])}..."
        )
    if len(frame) != len(sample):
        return f"Submission must have {len(sample)} rows"
    missing = set(sample[comp.id_column]) - set(frame[comp.id_column])
    if missing:
        return f"Could not find ids {sorted(missing)[:3]} in the submission"
    return None


def _settle(state: _State, submission: Submission) -> None:
    """Score a submission once its delay has passed (PENDING -> COMPLETE or ERROR)."""
    if submission.status != "PENDING" or time.monotonic() < submission.ready_at:
        return
    if submission.forced_error is not None:
        submission.status, submission.error = "ERROR", submission.forced_error
        return
    reason = _kaggle_check(state, submission.data)
    if reason is None:
        try:
            public, private = _score_file(state, submission.data)
        except KitError as error:
            reason = str(error)
        else:
            submission.status = "COMPLETE"
            submission.public_score, submission.private_score = f"{public:.5f}", f"{private:.5f}"
            return
    submission.status, submission.error = "ERROR", reason


_refs = itertools.count(FIRST_REF)


def _parse_step(step: str) -> tuple[bool, str, int, str | None]:
    """(after the request is carried out, kind: ok/status/reset/hang, status, Retry-After) of a script step."""
    after = step.startswith("done-")
    body = step[5:] if after else step
    if body in ("ok", "reset", "hang"):
        return after, body, 0, None
    status, _, retry_after = body.partition("@")
    if not status.isdigit():
        raise ValueError(f"unknown fault step {step!r}: use ok, reset, hang, a status like 500 or 429@1, or done-...")
    return after, "status", int(status), retry_after or None


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeKaggle/1.0"

    def log_message(self, format, *args):  # quiet: the tests read results, not access logs
        if os.environ.get("KAGGLE_SERVER_LOG"):
            super().log_message(format, *args)

    @property
    def state(self) -> _State:
        return self.server.state

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host}:{port}'}"

    # ------------------------------------------------------------------ replies

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: dict, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after else None
        self._send(status, json.dumps({"code": status, "message": message}).encode(), "application/json", headers)

    def _scripted(self, method: str) -> bool:
        """Take the next step of `method`'s script: True when the request is answered (or dropped) by it; a `done-`
        step is kept for `_after_handling` and the request carried out."""
        state = self.state
        with state.lock:
            key = method if state.scripts.get(method) else "*"
            steps = state.scripts.get(key)
            step = steps.pop(0) if steps else "ok"
        after, kind, status, retry_after = _parse_step(step)
        self._after = None
        if kind == "ok":
            return False
        if after:
            self._after = (kind, status, retry_after)
            self._answer, self.wfile = self.wfile, io.BytesIO()  # the real answer is made, then never sent
            return False
        self._misbehave(kind, status, retry_after)
        return True

    def _after_handling(self) -> None:
        if getattr(self, "_after", None) is not None:
            self.wfile = self._answer
            self._misbehave(*self._after)

    def _misbehave(self, kind: str, status: int, retry_after: str | None) -> None:
        if kind == "status":
            return self._error(status, _default_message(status), retry_after)
        if kind == "hang":
            time.sleep(self.state.hang_s)
        # a TCP reset: linger 0 makes close() send RST instead of FIN
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.wfile = io.BytesIO()
        self.close_connection = True

    def _faulted(self, method: str) -> bool:
        """Apply a configured delay and fault for `method`; True when an error was sent."""
        state = self.state
        state.calls[method] += 1
        if self._scripted(method):
            return True
        key = method if method in state.delays else "*"
        pause = state.delays.get(key, 0.0)
        with state.lock:
            left = state.delay_times.get(key)
            if pause and left is not None:
                state.delay_times[key] = left - 1
                if left <= 1:
                    state.delays.pop(key, None)
        if pause:
            time.sleep(pause)
        with state.lock:
            fault = state.faults.get(method) or state.faults.get("*")
            if fault is None:
                return False
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    state.faults = {k: v for k, v in state.faults.items() if v is not fault}
        self._error(fault.status, fault.message, fault.retry_after)
        return True

    def _signed_in(self) -> bool:
        header = self.headers.get("Authorization", "")
        state = self.state
        if header.startswith("Basic "):
            try:
                user, _, key = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == state.username and key == state.key
        if header.startswith("Bearer "):
            return state.token is not None and header[7:] == state.token
        return False

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline().strip()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # ------------------------------------------------------------------ verbs

    def do_POST(self) -> None:
        body = self._read_body()
        parts = urlparse(self.path).path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "v1"]:
            return self._error(404, f"no such API path {self.path}")
        service, method = parts[2], parts[3]
        if self._faulted(method):
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "request body is not JSON")
        if service == OAUTH_SERVICE and method == "IntrospectToken":
            token = request.get("token", "")
            active = self.state.token is not None and token == self.state.token
            return self._json({"active": True, "username": self.state.username} if active else {})
        if not self._signed_in():
            return self._error(401, "Unauthenticated")
        if service not in SERVICES:
            return self._error(404, f"unknown service {service}")
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._error(404, f"unknown method {method}")
        handler(request)
        self._after_handling()

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        if path.startswith("/kernel-output/"):
            return self._kernel_output_file(path)
        if path != f"/download/{self.state.comp.archive_name}":
            return self._error(404, f"no file at {path}")
        if self._faulted("download"):
            return
        data = self.state.bundle
        headers = {
            "Last-Modified": email.utils.formatdate(self.state.bundle_mtime, usegmt=True),
            "ETag": f'"{hashlib.sha256(data).hexdigest()[:20]}"',
            "Accept-Ranges": "bytes",
        }
        wanted = self.headers.get("Range", "")
        if (
            wanted.startswith("bytes=")
            and wanted.endswith("-")
            and self.headers.get("If-Range") in (None, headers["ETag"])
        ):
            start = int(wanted[6:-1])
            if start >= len(data):
                return self._error(416, "range not satisfiable")
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, data[start:], "application/zip", headers)
        self._send(200, data, "application/zip", headers)

    def do_PUT(self) -> None:
        body = self._read_body()
        if self._faulted("upload"):
            return
        token = urlparse(self.path).path.rsplit("/", 1)[-1]
        state = self.state
        with state.lock:
            if token not in state.uploads:
                return self._error(404, "unknown upload URL")
            state.uploads[token] = (state.uploads[token][0], body)
        self._json({})
        self._after_handling()

    # ------------------------------------------------------------------ API methods

    def _competition_known(self, request: dict) -> bool:
        name = request.get("competitionName", "")
        if name != self.state.comp.slug:
            self._error(404, f"Competition '{name}' not found")
            return False
        return True

    def _api_DownloadDataFiles(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        # Kaggle redirects to a signed storage URL; the query string mimics its signature
        location = f"{self.base}/download/{self.state.comp.archive_name}?X-Goog-Signature=fake"
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _api_ListDataFiles(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        with zipfile.ZipFile(io.BytesIO(self.state.bundle)) as zf:
            files = [
                {
                    "ref": i.filename,
                    "name": i.filename,
                    "totalBytes": i.file_size,
                    "creationDate": _iso(datetime(*i.date_time, tzinfo=UTC)),
                }
                for i in zf.infolist()
                if not i.is_dir()
            ]
        self._json({"files": files, "nextPageToken": ""})

    def _api_StartSubmissionUpload(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        token = hashlib.sha256(f"{request}{time.time_ns()}".encode()).hexdigest()[:24]
        with self.state.lock:
            self.state.uploads[token] = (str(request.get("fileName") or "submission.csv"), b"")
        self._json({"token": token, "createUrl": f"{self.base}/upload/{token}"})

    def _api_CreateSubmission(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        state = self.state
        token = request.get("blobFileTokens", "")
        with state.lock:
            file_name, data = state.uploads.pop(token, ("", b""))
            if not data:
                return self._error(400, "The submission file was not uploaded (unknown blob token)")
            submission = Submission(
                ref=next(_refs),
                competition=state.comp.slug,
                file_name=file_name,
                description=request.get("submissionDescription", ""),
                data=data,
                date=datetime.now(UTC),
                ready_at=time.monotonic() + state.score_delay,
                forced_error=state.next_error,
            )
            state.next_error = None
            state.submissions.append(submission)
        self._json({"message": f"Successfully submitted to {state.comp.title}", "ref": submission.ref})

    def _api_GetSubmission(self, request: dict) -> None:
        ref = int(request.get("ref", 0))
        state = self.state
        with state.lock:
            found = next((s for s in state.submissions if s.ref == ref), None)
            if found is not None:
                _settle(state, found)
        if found is None:
            return self._error(404, f"Submission {ref} not found")
        self._json(found.as_json())

    def _api_ListSubmissions(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        state = self.state
        size = int(request.get("pageSize") or 20)
        page = 1 if state.pages_ignored else max(int(request.get("page") or 1), 1)
        with state.lock:
            for submission in state.submissions:
                _settle(state, submission)
            newest_first = sorted(state.submissions, key=lambda s: s.ref, reverse=True)
        chunk = newest_first[(page - 1) * size : page * size]
        more = len(newest_first) > page * size
        self._json({"submissions": [s.as_json() for s in chunk], "nextPageToken": str(page + 1) if more else ""})

    def _api_GetSubmissionLimits(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        today = len([s for s in self.state.submissions if not s.past])
        limit = self.state.daily_limit
        self._json({"numToday": today, "numTotal": len(self.state.submissions), "numAllowedNow": max(limit - today, 0)})

    # ------------------------------------------------------------------ competition listing and leaderboard

    def _api_ListCompetitions(self, request: dict) -> None:
        comp, state = self.state.comp, self.state
        found = request.get("search", "") in (comp.slug, comp.title, "")
        self._json(
            {
                "competitions": [
                    {
                        "id": 1,
                        "ref": f"https://www.kaggle.com/competitions/{comp.slug}",
                        "title": comp.title,
                        "isKernelsSubmissionsOnly": state.code_competition,
                        "evaluationMetric": state.evaluation_metric or comp.metric.label,
                        "maxDailySubmissions": state.daily_limit,
                    }
                ]
                if found
                else [],
                "nextPageToken": "",
            }
        )

    def _api_GetLeaderboard(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        state = self.state
        with state.lock:
            for submission in state.submissions:
                _settle(state, submission)
            mine = [s for s in state.submissions if s.status == "COMPLETE" and s.public_score]
        higher = state.comp.metric.direction.startswith("higher")
        teams = [(name, score, f"2026-01-0{i + 1}T00:00:00.000Z") for i, (name, score) in enumerate(LEADERBOARD)]
        if mine:
            best = (max if higher else min)(mine, key=lambda s: float(s.public_score))
            teams.append((state.username, float(best.public_score), _iso(best.date)))
        teams.sort(key=lambda t: t[1], reverse=higher)
        self._json(
            {
                "submissions": [
                    {"teamId": 100 + i, "teamName": name, "submissionDate": date, "score": f"{score:.5f}"}
                    for i, (name, score, date) in enumerate(teams)
                ],
                "nextPageToken": "",
            }
        )

    # ------------------------------------------------------------------ datasets

    def _api_StartBlobUpload(self, request: dict) -> None:
        token = hashlib.sha256(f"{request}{time.time_ns()}".encode()).hexdigest()[:24]
        with self.state.lock:
            self.state.uploads[token] = (str(request.get("name") or "file"), b"")
        self._json({"token": token, "createUrl": f"{self.base}/upload/{token}"})

    def _refused_slug(self, ref: str) -> bool:
        if ref in self.state.taken_slugs or not ref.startswith(self.state.username + "/"):
            self._error(403, f"Permission denied: {ref} belongs to another user")
            return True
        return False

    def _new_version(self, dataset: Dataset, files: list) -> str | None:
        """Store the uploaded blobs as the dataset's next version; the error text, or None."""
        state = self.state
        folder = state.workdir / "datasets" / dataset.owner / dataset.slug / f"v{len(dataset.versions) + 1}"
        folder.mkdir(parents=True)
        with state.lock:
            for item in files:
                name, data = state.uploads.pop(item.get("token", ""), ("", b""))
                if not name:
                    return "Unknown file token: the file was not uploaded"
                (folder / Path(name).name).write_bytes(data)
        dataset.versions.append(folder)
        dataset.ready_at = time.monotonic() + state.dataset_delay
        return None

    def _api_CreateDataset(self, request: dict) -> None:
        ref = f"{request.get('ownerSlug', '')}/{request.get('slug', '')}"
        if self._refused_slug(ref):
            return
        state = self.state
        if ref in state.datasets:
            return self._json({"status": "error", "error": f"The requested slug is already in use: {ref}"})
        dataset = state.datasets[ref] = Dataset(*ref.split("/"))
        error = self._new_version(dataset, request.get("files") or [])
        if error:
            return self._json({"status": "error", "error": error})
        self._json({"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"})

    def _api_CreateDatasetVersion(self, request: dict) -> None:
        ref = f"{request.get('ownerSlug', '')}/{request.get('datasetSlug', '')}"
        if self._refused_slug(ref):
            return
        dataset = self.state.datasets.get(ref)
        if dataset is None:
            return self._error(404, f"Dataset {ref} not found")
        error = self._new_version(dataset, (request.get("body") or {}).get("files") or [])
        self._json(
            {"status": "error", "error": error}
            if error
            else {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}
        )

    def _dataset(self, request: dict) -> Dataset | None:
        ref = f"{request.get('ownerSlug', '')}/{request.get('datasetSlug', '')}"
        if ref in self.state.taken_slugs:
            self._error(403, f"Permission denied: {ref} belongs to another user")
            return None
        dataset = self.state.datasets.get(ref)
        if dataset is None:
            self._error(404, f"Dataset {ref} not found")
        return dataset

    def _api_GetDatasetStatus(self, request: dict) -> None:
        dataset = self._dataset(request)
        if dataset is not None:
            self._json({"status": "READY" if time.monotonic() >= dataset.ready_at else "BLOBS_RECEIVED"})

    def _api_GetDataset(self, request: dict) -> None:
        dataset = self._dataset(request)
        if dataset is not None:
            ref = f"{dataset.owner}/{dataset.slug}"
            self._json({"ref": ref, "currentVersionNumber": len(dataset.versions), "title": dataset.slug})

    # ------------------------------------------------------------------ notebooks

    def _api_SaveKernel(self, request: dict) -> None:
        ref = str(request.get("slug") or "")
        if self._refused_slug(ref):
            return
        state = self.state
        missing = [d for d in request.get("datasetDataSources") or [] if d not in state.datasets]
        if missing:
            return self._json({"error": "Invalid dataset sources", "invalidDatasetSources": missing})
        owner, slug = ref.split("/")
        with state.lock:
            versions = state.kernels.setdefault(ref, [])
            version = KernelVersion(
                owner,
                slug,
                len(versions) + 1,
                state.workdir / "kernels" / owner / slug / f"v{len(versions) + 1}",
                request,
            )
            versions.append(version)
        threading.Thread(target=_run_kernel, args=(state, version), daemon=True).start()
        self._json(
            {
                "ref": f"/code/{ref}",
                "url": f"https://www.kaggle.com/code/{ref}",
                "versionNumber": version.number,
                "kernelId": 7,
            }
        )

    def _api_GetKernel(self, request: dict) -> None:
        ref = f"{request.get('userName', '')}/{request.get('kernelSlug', '')}"
        versions = self.state.kernels.get(ref, [])
        if not versions:
            return self._error(404, f"Notebook {ref} not found")
        metadata = {"ref": ref, "slug": ref.split("/")[1], "currentVersionNumber": len(versions)}
        self._json({"metadata": metadata, "blob": {"source": str(versions[-1].metadata.get("text") or "")}})

    def _kernel_version(self, request: dict) -> KernelVersion | None:
        ref = f"{request.get('userName', '')}/{request.get('kernelSlug', '')}"
        versions = self.state.kernels.get(ref, [])
        label = str(request.get("versionLabel") or "")
        found = (
            versions[int(label[1:]) - 1]
            if label[1:].isdigit() and 0 < int(label[1:]) <= len(versions)
            else (None if label else (versions[-1] if versions else None))
        )
        if found is None:
            self._error(404, f"Notebook {ref} {label} not found")
        return found

    def _api_GetKernelSessionStatus(self, request: dict) -> None:
        version = self._kernel_version(request)
        if version is not None:
            body = {"status": version.status}
            if version.failure:
                body["failureMessage"] = version.failure
            self._json(body)

    def _api_ListKernelSessionOutput(self, request: dict) -> None:
        version = self._kernel_version(request)
        if version is None:
            return
        working = version.folder / "working"
        files = sorted(p.name for p in working.iterdir() if p.is_file()) if working.is_dir() else []
        base = f"{self.base}/kernel-output/{version.owner}/{version.slug}/{version.number}"
        self._json(
            {
                "files": [{"url": f"{base}/{name}", "fileName": name} for name in files],
                "log": version.log,
                "nextPageToken": "",
            }
        )

    def _kernel_output_file(self, path: str) -> None:
        parts = path.strip("/").split("/")  # kernel-output/<owner>/<slug>/<version>/<name>
        versions = self.state.kernels.get("/".join(parts[1:3]), []) if len(parts) == 5 else []
        number = int(parts[3]) if len(parts) == 5 and parts[3].isdigit() else 0
        target = versions[number - 1].folder / "working" / parts[4] if 0 < number <= len(versions) else None
        if target is None or not target.is_file():
            return self._error(404, f"no file at {path}")
        self._send(200, target.read_bytes(), "application/octet-stream")

    def _api_CreateCodeSubmission(self, request: dict) -> None:
        if not self._competition_known(request):
            return
        state = self.state
        if not state.code_competition:
            return self._error(400, "This competition does not accept notebook submissions")
        versions = state.kernels.get(f"{request.get('kernelOwner', '')}/{request.get('kernelSlug', '')}", [])
        number = int(request.get("kernelVersion") or len(versions))
        version = versions[number - 1] if 0 < number <= len(versions) else None
        output = version.folder / "working" / str(request.get("fileName") or "submission.csv") if version else None
        if version is None or version.status != "COMPLETE" or not output.is_file():
            return self._error(400, "The notebook version has no completed output file to submit")
        with state.lock:
            submission = Submission(
                ref=next(_refs),
                competition=state.comp.slug,
                file_name=output.name,
                description=request.get("submissionDescription", ""),
                data=output.read_bytes(),
                date=datetime.now(UTC),
                ready_at=time.monotonic() + state.score_delay,
                forced_error=state.next_error,
            )
            state.next_error = None
            state.submissions.append(submission)
        self._json({"message": "Your notebook was submitted", "ref": submission.ref})


def _run_kernel(state: _State, version: KernelVersion) -> None:
    """Run a pushed script as Kaggle would: offline, inputs laid out by slug, in a fresh interpreter."""
    inputs, working = version.folder / "input", version.folder / "working"
    working.mkdir(parents=True)
    for ref in version.metadata.get("datasetDataSources") or []:
        shutil.copytree(state.datasets[ref].versions[-1], inputs / ref.split("/")[1])
    for slug in version.metadata.get("competitionDataSources") or []:
        if slug == state.comp.slug:
            with zipfile.ZipFile(io.BytesIO(state.bundle)) as zf:
                zf.extractall(inputs / slug)
    script = version.folder / "script.py"
    script.write_text(str(version.metadata.get("text") or ""))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE", "PYTHONPATH", "PIP_"))}
    env.update(
        KAGGLE_KIT_INPUT_ROOT=str(inputs),
        KAGGLE_KIT_WORKING_DIR=str(working),
        PYTHONUNBUFFERED="1",
        PIP_INDEX_URL="http://127.0.0.1:9/",
        PIP_NO_INDEX="1",
    )
    version.status = "RUNNING"
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=working,
            env=env,
            capture_output=True,
            text=True,
            timeout=state.kernel_timeout,
        )
    except subprocess.TimeoutExpired as stopped:
        version.log = (
            (stopped.stdout or b"").decode(errors="replace")
            if isinstance(stopped.stdout, bytes)
            else (stopped.stdout or "")
        )
        version.failure = f"Notebook exceeded its run time limit of {state.kernel_timeout:g} seconds"
        version.status = "ERROR"
        return
    version.log = done.stdout + done.stderr
    version.failure = "" if done.returncode == 0 else f"Notebook exited with code {done.returncode}"
    version.status = "COMPLETE" if done.returncode == 0 else "ERROR"


def _parse_pairs(values: list[str], kind: type, what: str) -> dict:
    found = {}
    for value in values:
        name, _, number = value.partition("=")
        if not number:
            raise SystemExit(f"{what} {value!r}: write METHOD=VALUE, e.g. StartSubmissionUpload=403")
        found[name] = kind(number)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="A local fake of Kaggle's competition API for dry runs of kaggle-kit (and the kaggle CLI)."
    )
    parser.add_argument("--competition", required=True, help="cifar10 or dog_breed")
    parser.add_argument(
        "--bundle", required=True, type=Path, help="folder with <slug>.zip and answers.csv (generated when missing)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--key", default=DEFAULT_KEY)
    parser.add_argument("--token", default=None, help="also accept this bearer token (KAGGLE_API_TOKEN)")
    parser.add_argument("--score-delay", type=float, default=3.0, help="seconds a submission stays PENDING")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="METHOD=STATUS",
        help="answer METHOD (or *) with this HTTP status",
    )
    parser.add_argument("--retry-after", default="60", help="Retry-After seconds sent with a 429 fault")
    parser.add_argument(
        "--delay", action="append", default=[], metavar="METHOD=SECONDS", help="answer METHOD (or *) slowly"
    )
    parser.add_argument("--error-reason", default=None, help="score the first submission as ERROR with this reason")
    parser.add_argument("--code-competition", action="store_true", help="list the competition as notebook-only")
    parser.add_argument("--kernel-timeout", type=float, default=600.0, help="seconds a pushed notebook may run")
    parser.add_argument("--daily-limit", type=int, default=DAILY_LIMIT, help="submissions allowed per day")
    args = parser.parse_args(argv)

    comp = resolve(args.competition)
    if not (args.bundle / comp.archive_name).is_file():
        from kaggle_kit.competitions.samples import write_sample

        write_sample(comp, args.bundle)
        print(f"generated {args.bundle / comp.archive_name} and answers.csv", flush=True)
    server = KaggleServer(
        comp,
        args.bundle,
        args.username,
        args.key,
        args.token,
        args.host,
        args.port,
        args.score_delay,
        code_competition=args.code_competition,
        kernel_timeout=args.kernel_timeout,
        daily_limit=args.daily_limit,
    )
    for method, status in _parse_pairs(args.fault, int, "--fault").items():
        server.fail(method, status, retry_after=args.retry_after if status == 429 else None)
    for method, seconds in _parse_pairs(args.delay, float, "--delay").items():
        server.delay(method, seconds)
    if args.error_reason:
        server.error_next_submission(args.error_reason)
    print(f"fake Kaggle for {comp.slug} at {server.url}; point kaggle-kit at it with:", flush=True)
    shown_key = args.key if args.key == DEFAULT_KEY else "<your --key>"  # the built-in fake key is no secret
    print(
        f"  export KAGGLE_KIT_API_ENDPOINT={server.url} KAGGLE_USERNAME={args.username} KAGGLE_KEY={shown_key} "
        "NO_PROXY=127.0.0.1,localhost",
        flush=True,
    )
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
