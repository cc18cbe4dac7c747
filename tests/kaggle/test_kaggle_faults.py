"""Kaggle's passing faults during a submit, through the fake server's fault scripts: 429 with and without
Retry-After, 500, a reset connection, an answer that never comes, before or after Kaggle carried the request out.
Each is retried within the budget, and the ledger ends with exactly one record per submission Kaggle holds."""

from __future__ import annotations

import time

import pytest
from kaggle_helpers import assert_one_line_error, kit, kit_env, ledger_of, write_submission


def submit_through(server, downloaded, bundle, tmp_path, **env):
    path = write_submission(downloaded, bundle)
    return kit(["submit", str(path), "--timeout", "20"], downloaded, kit_env(tmp_path, server.url, **env))


def assert_exactly_one(server, downloaded, proc):
    assert proc.returncode == 0, proc.stderr
    (made,) = server.submissions  # never two, never zero
    (record,) = ledger_of(downloaded).records()
    assert record.kaggle_ref == made.ref and record.status == "COMPLETE"
    assert record.public_score == pytest.approx(float(made.public_score))


@pytest.mark.parametrize(
    "method, steps, calls",
    [
        ("CreateSubmission", ["429@1", "429@1"], 3),  # the case: exited 2 before
        ("StartSubmissionUpload", ["429", "503"], 3),  # no Retry-After: backoff
        ("CreateSubmission", ["500"], 2),  # refused before creating: the listing shows none, sent again
        ("CreateSubmission", ["reset"], 2),
        ("CreateSubmission", ["done-500"], 1),  # created, then a 500: found in the listing, not sent again
        ("CreateSubmission", ["done-reset"], 1),
        ("CreateSubmission", ["done-hang"], 1),
        ("upload", ["reset", "500"], 3),
        ("GetSubmission", ["500", "429@1"], 3),
    ],
)
def test_passing_faults_end_in_exactly_one_submission(server, downloaded, bundle, tmp_path, method, steps, calls):
    server.script(method, steps, hang_s=5)
    proc = submit_through(server, downloaded, bundle, tmp_path, KAGGLE_KIT_HTTP_TIMEOUT="2")
    assert_exactly_one(server, downloaded, proc)
    assert server.calls[method] >= calls if method in ("upload", "GetSubmission") else server.calls[method] == calls


def test_retry_after_is_honoured(server, downloaded, bundle, tmp_path):
    server.script("CreateSubmission", ["429@2"])
    started = time.monotonic()
    proc = submit_through(server, downloaded, bundle, tmp_path)
    assert time.monotonic() - started >= 2  # waited what Kaggle asked for, not the 1 s backoff
    assert_exactly_one(server, downloaded, proc)


def test_a_fault_outlasting_the_budget_is_one_line_and_nothing_submitted(server, downloaded, bundle, tmp_path):
    server.script("CreateSubmission", ["500"] * 20)
    started = time.monotonic()
    proc = submit_through(server, downloaded, bundle, tmp_path, KAGGLE_KIT_RETRY_BUDGET="2")
    assert time.monotonic() - started < 15
    assert_one_line_error(proc, "500", "retrying for 2 s", "KAGGLE_KIT_RETRY_BUDGET")
    assert not server.submissions
    (record,) = ledger_of(downloaded).records()
    assert record.status == "UPLOAD_FAILED" and record.kaggle_ref is None


def test_unknown_upload_state_is_reported_and_settled_later(server, downloaded, bundle, tmp_path):
    """Created, the answer lost, and the listing unreadable: the state is unknown and said so, with the
    command that checks it; that command finds the submission and records it, once."""
    server.script("CreateSubmission", ["done-reset"])
    server.script("ListSubmissions", ["500"] * 20)
    proc = submit_through(server, downloaded, bundle, tmp_path, KAGGLE_KIT_RETRY_BUDGET="1")
    assert_one_line_error(proc, "unknown state", "kaggle-kit submissions dog_breed", "before submitting it again")
    (made,) = server.submissions
    (record,) = ledger_of(downloaded).records()
    assert record.status == "UPLOAD_UNKNOWN" and record.kaggle_ref is None

    server.clear()
    time.sleep(0.4)  # scored
    listed = kit(["submissions", "dog_breed"], downloaded, kit_env(tmp_path, server.url))
    assert listed.returncode == 0, listed.stderr
    (record,) = ledger_of(downloaded).records()
    assert record.kaggle_ref == made.ref and record.status == "COMPLETE"


def test_a_listing_through_429_and_resets(server, downloaded, bundle, tmp_path):
    assert_exactly_one(server, downloaded, submit_through(server, downloaded, bundle, tmp_path))
    server.script("ListSubmissions", ["429@1", "reset"])
    listed = kit(["submissions", "dog_breed"], downloaded, kit_env(tmp_path, server.url))
    assert listed.returncode == 0, listed.stderr
    assert str(server.submissions[0].ref) in listed.stdout and server.calls["ListSubmissions"] == 3


def test_the_budget_is_declared_and_checked(monkeypatch):
    from email.utils import formatdate

    from kaggle_kit.core.errors import KitError
    from kaggle_kit.kaggle.api.retry import BUDGET_ENV, MAX_ATTEMPTS, RetryPolicy, retry_after_s, retry_budget_s

    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert retry_budget_s() == 60
    monkeypatch.setenv(BUDGET_ENV, "soon")
    with pytest.raises(KitError, match="KAGGLE_KIT_RETRY_BUDGET='soon' is not a number of seconds"):
        retry_budget_s()
    assert retry_after_s("7") == 7 and retry_after_s("") is None and retry_after_s("whenever") is None
    assert 25 < retry_after_s(formatdate(time.time() + 30, usegmt=True)) <= 30  # an HTTP date
    policy = RetryPolicy(budget_s=1000)
    assert [policy.next_wait() for _ in range(MAX_ATTEMPTS - 1)] == [1, 2, 4, 8, 16, 30, 30]  # doubling, capped
    assert policy.next_wait() is None  # out of tries: MAX_ATTEMPTS sent in all
    short = RetryPolicy(budget_s=5)
    assert short.next_wait("3") == 3 and short.next_wait("10") is None  # a wait past the budget is not begun
