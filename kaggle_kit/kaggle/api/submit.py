"""`submit`: validate a submission file, upload it with the official client, record it, poll for the score."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ...competitions.registry import Competition
from ...core import progress
from ...core.errors import KitError
from ...submissions.ledger import COMPLETE, ERROR, PENDING, UPLOAD_FAILED, UPLOAD_UNKNOWN, Ledger, LedgerRecord
from ...submissions.provenance import RunInfo, describe_run, file_sha256
from .client import _api, _kaggle_call
from .credentials import _error
from .upload import UploadUnknown, create_once, settle_unfinished, start_and_upload

DEFAULT_WAIT_S = 1800.0
# Scoring takes seconds to minutes: poll soon, then back off to a polite interval.
POLL_FIRST_S = 1.0
POLL_MAX_S = 30.0
MESSAGE_LIMIT = 250  # Kaggle truncates long submission descriptions


# =========================================================================== submit


def default_message(file: Path, run: RunInfo, sha256: str) -> str:
    """Run name, short config and file hash: enough to find the run again from Kaggle's page."""
    parts = [run.name or file.name]
    if run.recipe:
        parts.append(run.recipe)
    if run.config.tta:
        parts.append("tta")
    if run.config.temperature:
        parts.append(f"T={float(run.config.temperature):.2f}")
    parts.append(f"sha256 {sha256[:12]}")
    return " | ".join(parts)[:MESSAGE_LIMIT]


def _score(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


@dataclass
class SubmitResult:
    competition: Competition
    file: Path
    sha256: str
    message: str
    record: LedgerRecord
    run: RunInfo
    ref: int | None = None
    status: str = PENDING
    public_score: float | None = None
    private_score: float | None = None
    left_today: int | None = None  # submissions Kaggle still allows today after this one, where it says


def _sample_path(comp: Competition, data_dir) -> Path:
    try:
        from ...data.layout import find_sample_path

        return find_sample_path(comp, data_dir)
    except KitError as error:
        raise _error(f"cannot check the file against {comp.sample_file} before uploading: {error}") from None


def _get_submission(api, ref: int):
    """One GetSubmission, without the client's own retry loop (it would sleep through a 429)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionRequest

    with api.build_kaggle_client() as client:
        request = ApiGetSubmissionRequest()
        request.ref = int(ref)
        return client.competitions.competition_api_client.get_submission(request)


def wait_for_score(api, comp: Competition, ref: int, timeout: float, file_name: str = ""):
    """Poll submission `ref` until Kaggle reports COMPLETE or ERROR; back off from 1 s to 30 s; stop at `timeout`."""
    import requests

    deadline = time.monotonic() + timeout
    delay = POLL_FIRST_S
    status = PENDING
    while True:
        with _kaggle_call(
            f"checking submission {ref} (it was submitted; `kaggle-kit submissions {comp.name}` shows it later)", comp
        ):
            try:
                submission = _get_submission(api, ref)
            except requests.exceptions.HTTPError as error:
                # a just-created submission can be briefly unknown to the read path: still pending
                if error.response is None or error.response.status_code != 404:
                    raise
                submission = None
        if submission is not None:
            status = submission.status.name
            if status in (COMPLETE, ERROR):
                return submission
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _error(
                f"submission {ref}{' of ' + file_name if file_name else ''} is still {status} after {timeout:g} s: "
                f"Kaggle goes on scoring it - see the score later with `kaggle-kit submissions {comp.name}`"
            )
        progress.say(f"submission {ref}: {status}, next check in {min(delay, remaining):.0f} s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, POLL_MAX_S)


def submissions_left(api, comp: Competition) -> int | None:
    """How many submissions Kaggle still allows today, or None where the API does not say."""
    import requests
    from kagglesdk.competitions.types.competition_api_service import ApiGetSubmissionLimitsRequest

    request = ApiGetSubmissionLimitsRequest()
    request.competition_name = comp.slug
    try:
        with api.build_kaggle_client() as client:
            limits = client.competitions.competition_api_client.get_submission_limits(request)
    except (requests.exceptions.RequestException, AttributeError, ValueError):
        return None  # the limit is a courtesy: a failure to read it must not block a submission
    if not limits.num_allowed_now and not limits.num_today and not limits.limited_by_total:
        return None  # an answer without numbers (zeros are left out of the JSON): nothing is known
    return int(limits.num_allowed_now or 0)


def stop_at_daily_limit(api, comp: Competition) -> int | None:
    """Today's submissions left; a KitError, before anything is sent, when none are."""
    left = submissions_left(api, comp)
    if left == 0:
        raise _error(
            f"no submissions left today for {comp.slug}: Kaggle's daily limit is reached - nothing was sent; "
            "submit again after 00:00 UTC"
        )
    return left


def _checked_file(file: Path, competition, timeout: float, data_dir, run_dir):
    """(competition, the run that wrote `file`), once the file exists and validates: refused before anything is
    sent otherwise."""
    from ...submissions import files as submissions

    if not file.is_file():
        raise _error(
            f"{file}: no such file: pass the CSV written by `kaggle-kit predict` (submissions/<competition>/<run>.csv)"
        )
    if not timeout > 0:  # also NaN, which compares false with everything and would wait forever
        raise _error(f"--timeout {timeout:g}: give a positive number of seconds to wait for the score")
    try:
        comp, run = describe_run(file, competition, run_dir)
    except KitError as error:  # the run folder's messages get the same redaction as every other here
        raise _error(str(error), error.exit_code) from None
    # the sample predict checked the file against, else the data folder given, recorded or trained on
    sample = run.sample if data_dir is None and run.sample and run.sample.is_file() else None
    data_dir = data_dir or run.data_dir or run.config.data_dir or None
    problems = submissions.validate(file, comp, sample or _sample_path(comp, data_dir))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise _error(
            f"{file} was not uploaded: {len(problems)} problem{'s' if len(problems) > 1 else ''}: {shown}; "
            f"run `kaggle-kit validate {file}` for details"
        )
    return comp, run


def _send(api, comp: Competition, file: Path, message: str, record: LedgerRecord, ledger: Ledger) -> int:
    """Upload `file` and create its submission (once); Kaggle's ref. A failure updates the record and says why."""
    progress.say(f"uploading {file} to {comp.slug}")
    try:
        token = start_and_upload(api, comp, file)
        return create_once(api, comp, file, message, token, ledger)
    except UploadUnknown as unknown:
        ledger.update(record.id, status=UPLOAD_UNKNOWN, error=str(unknown))
        raise _error(str(unknown)) from None
    except KitError as error:
        ledger.update(record.id, status=UPLOAD_FAILED, error=str(error))
        raise


def submit(
    file: Path | str,
    competition: Competition | str | None = None,
    message: str | None = None,
    wait: bool = True,
    timeout: float = DEFAULT_WAIT_S,
    data_dir: Path | str | None = None,
    run_dir: Path | str | None = None,
    ledger: Ledger | None = None,
) -> SubmitResult:
    """Validate, upload with the official client, record in the ledger, and (with `wait`) poll for the scores.

    A file with problems is refused before anything is sent. The ledger gets a record before the upload
    and an update at each step (ref, then COMPLETE/ERROR with scores or Kaggle's reason), so an
    interrupted submit leaves a record saying how far it got.
    """
    file = Path(file)
    comp, run = _checked_file(file, competition, timeout, data_dir, run_dir)
    sha256 = file_sha256(file)
    message = (message or default_message(file, run, sha256)).strip()
    api = _api()  # credentials first: no ledger record for a submit that never reached Kaggle
    left = stop_at_daily_limit(api, comp)
    ledger = ledger or Ledger()
    earlier = settle_unfinished(api, comp, file, sha256, ledger)
    record = (
        earlier[0]
        if earlier
        else ledger.add(
            comp.name,
            file,
            sha256,
            run=run.name,
            run_dir=str(run.run_dir) if run.run_dir else None,
            recipe=run.recipe,
            metric=comp.metric.name,
            local_score=run.local_score,
            local_interval=run.local_interval,
            message=message,
        )
    )
    result = SubmitResult(comp, file, sha256, message, record, run, left_today=None if left is None else left - 1)

    if earlier:  # an earlier submit of this file reached Kaggle but ended before recording it: not sent twice
        result.ref = earlier[1]
        progress.say(f"{file} reached Kaggle in an earlier submit (submission {result.ref}): not sending it again")
    else:
        result.ref = _send(api, comp, file, result.message, record, ledger)
    ledger.update(record.id, kaggle_ref=result.ref, status=PENDING)
    if not wait:
        return result

    try:
        scored = wait_for_score(api, comp, result.ref, timeout, file.name)
    except KeyboardInterrupt:
        raise _error(
            f"interrupted while waiting for the score: {file.name} was submitted as submission {result.ref} and "
            f"Kaggle goes on scoring it - see the score with `kaggle-kit submissions {comp.name}`",
            exit_code=130,
        ) from None
    result.status = scored.status.name
    if result.status == ERROR:
        reason = " ".join((scored.error_description or "no reason given").split())
        ledger.update(record.id, status=ERROR, error=reason)
        raise _error(
            f"Kaggle could not score {file.name} (submission {result.ref}): {reason}: fix the file and submit again"
        )
    result.public_score, result.private_score = _score(scored.public_score), _score(scored.private_score)
    ledger.update(record.id, status=COMPLETE, public_score=result.public_score, private_score=result.private_score)
    return result
