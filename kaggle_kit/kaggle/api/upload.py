"""A submission's three steps (upload URL, file upload, CreateSubmission), each retried, and made exactly once.

The official client's `competition_submit` runs the three steps with no way to tell a refused creation from
one whose answer was lost, so kaggle-kit runs them itself, with the client's own request types and upload:
- the upload URL and the file's PUT are safe to repeat: a failed PUT starts both again within the budget;
- `CreateSubmission` is not: a 429 (Kaggle refused it, nothing was made) is retried after the wait Kaggle asks
  for, but after a 5xx, a reset connection or a timeout kaggle-kit first looks in Kaggle's listing for a
  submission with this file name and message that no ledger record owns. Found, that is the submission; not
  found, the creation is sent again. When the listing cannot be read either, the state is unknown and said so
  (`UploadUnknown`), with the command that settles it.
"""

from __future__ import annotations

import contextlib
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ...competitions.registry import Competition
from ...core import progress
from ...submissions.ledger import UPLOAD_FAILED, UPLOAD_UNKNOWN, UPLOADING, Ledger
from .client import _kaggle_call, _quiet_stdout, _upload_timeout, http_timeout
from .credentials import _error
from .retry import RetryPolicy, transient_status

CLOCK_SKEW = timedelta(minutes=10)  # Kaggle's clock against ours, when matching a submission to this upload


class UploadUnknown(Exception):
    """Kaggle may or may not have the submission: the message says how to find out."""


def start_and_upload(api, comp: Competition, file: Path) -> str:
    """The blob token of `file`, uploaded to a fresh upload URL; a failed upload is started again within budget."""
    from kaggle.api.kaggle_api_extended import ResumableUploadResult
    from kagglesdk.competitions.types.competition_api_service import ApiStartSubmissionUploadRequest

    policy = RetryPolicy()
    while True:
        with _kaggle_call(f"uploading {file.name} to {comp.slug}", comp):
            request = ApiStartSubmissionUploadRequest()
            request.competition_name = comp.slug
            request.file_name = file.name
            request.content_length = file.stat().st_size
            request.last_modified_epoch_seconds = int(file.stat().st_mtime)
            with api.build_kaggle_client() as client:
                started = client.competitions.competition_api_client.start_submission_upload(request)
            # the client prints upload errors; its upload session gets our timeout (see _upload_timeout)
            with contextlib.redirect_stdout(io.StringIO()) as said, _upload_timeout(http_timeout()):
                result = api.upload_complete(str(file), started.create_url, quiet=True)
        if result == ResumableUploadResult.COMPLETE:
            return started.token
        wait = policy.next_wait()
        detail = " ".join(said.getvalue().split())[:160] or "the upload server refused the file"
        if wait is None:
            raise _error(
                f"the upload of {file.name} to Kaggle failed ({detail}) after {policy.describe()}: "
                "nothing was submitted - try again"
            )
        progress.say(f"upload of {file.name} failed ({detail}), try {policy.attempts + 1} in {wait:g} s")
        time.sleep(wait)


def create_once(api, comp: Competition, file: Path, message: str, token: str, ledger: Ledger) -> int:
    """Kaggle's ref of the one submission made from `token` (see the module docstring)."""
    import requests

    policy = RetryPolicy()
    since = datetime.now(UTC) - CLOCK_SKEW
    action = f"creating the submission of {file.name} on {comp.slug}"
    while True:
        try:
            return _create(api, comp, message, token)
        except requests.exceptions.RequestException as error:
            reason = _ambiguous(error)
            if reason == "429":  # refused: nothing was made, send it again after the wait Kaggle asks for
                wait = policy.next_wait(error.response.headers.get("Retry-After"))
            elif reason is not None:  # the creation may have arrived: look before sending it again
                found = _arrived(api, comp, file, message, ledger, since, reason)
                if found is not None:
                    return found
                wait = policy.next_wait()
            if reason is None or wait is None:
                _raise_mapped(error, action, comp)
        progress.say(f"Kaggle: {reason} on CreateSubmission, try {policy.attempts + 1} in {wait:g} s")
        time.sleep(wait)


def _raise_mapped(error: Exception, action: str, comp: Competition):
    """`error` as `_kaggle_call` words it: one line with the fix."""
    with _kaggle_call(action, comp):
        raise error


def _create(api, comp: Competition, message: str, token: str) -> int:
    from kagglesdk.competitions.types.competition_api_service import ApiCreateSubmissionRequest

    request = ApiCreateSubmissionRequest()
    request.competition_name = comp.slug
    request.blob_file_tokens = token
    if message:
        request.submission_description = message
    with api.build_kaggle_client() as client:
        made = client.competitions.competition_api_client.create_submission(request)
    if not made.ref:
        raise _error(f"Kaggle created no submission ({made.message or 'no ref returned'}): nothing was submitted")
    return int(made.ref)


def _ambiguous(error: BaseException) -> str | None:
    """Why the creation failed for now: "429" (refused), or its fate unknown (a 5xx, a lost connection, no
    answer); None when it failed for good."""
    import requests

    if isinstance(error, requests.exceptions.HTTPError):
        status = error.response.status_code if error.response is not None else 0
        if status == 429:
            return "429"
        return f"HTTP {status}" if transient_status(status) else None
    if isinstance(error, requests.exceptions.Timeout):
        return f"no answer within {http_timeout():g} s"
    if isinstance(error, requests.exceptions.ConnectionError):
        return "the connection was lost"
    return None


def _arrived(api, comp: Competition, file: Path, message: str, ledger: Ledger, since: datetime, reason: str):
    """The ref of a submission of `file` with `message` made since `since` that no ledger record owns, or None."""
    owned = set(ledger.by_ref(comp.name))
    try:
        with _kaggle_call(f"checking whether {file.name} reached Kaggle", comp), _quiet_stdout():
            listed = api.competition_submissions(comp.slug, page_number=1, page_size=20) or []
    except Exception as error:
        raise UploadUnknown(
            f"the upload of {file.name} to {comp.slug} is in an unknown state: creating it failed ({reason}) and "
            f"Kaggle's listing could not be read ({error}): run `kaggle-kit submissions {comp.name}` to see whether "
            "it arrived before submitting it again"
        ) from None
    for item in listed:
        if item is None or int(item.ref) in owned:
            continue
        made = item.date.replace(tzinfo=item.date.tzinfo or UTC) if item.date else None
        if (item.description or "") == message and (item.file_name or "") == file.name and (not made or made >= since):
            return int(item.ref)
    return None


def settle_unfinished(api, comp: Competition, file: Path, sha256: str, ledger: Ledger):
    """(record, ref) of an earlier submit of this very file that ended (killed, crashed, a lost answer, the
    ledger's disk full) before its record learnt Kaggle's ref, found in Kaggle's listing by file name and message:
    the rerun records it instead of submitting the file twice. An earlier record whose upload is not in the
    listing never reached Kaggle: it is closed as failed. None when there is nothing to settle."""
    unfinished = [
        r
        for r in ledger.records(comp.name)
        if r.sha256 == sha256 and r.kaggle_ref is None and r.status in (UPLOADING, UPLOAD_UNKNOWN)
    ]
    for record in reversed(unfinished):
        since = datetime.fromisoformat(record.time) - CLOCK_SKEW
        reason = "an earlier submit of it ended before Kaggle's answer was recorded"
        try:
            found = _arrived(api, comp, file, record.message or "", ledger, since, reason)
        except UploadUnknown as unknown:  # the listing cannot be read: sending the file again might make two
            raise _error(str(unknown)) from None
        if found is not None:
            return record, found
        ledger.update(record.id, status=UPLOAD_FAILED, error="the submit ended before the file reached Kaggle")
    return None
