"""Kaggle through its official client: download a competition, submit and poll, list submissions, doctor.

This package is the only place that imports `kaggle` and `kagglesdk`, always inside a function.

    credentials   which credentials the client will use; `_redact` / `_error` keep secrets out of messages
    client        the client as kaggle-kit builds it (endpoint, timeouts); `_kaggle_call` maps every failure
    retry         Kaggle's passing failures (429, 5xx, resets, no answer) retried within a declared budget
    upload        a submission's upload and creation, each retried, the creation made exactly once
    download      the competition bundle: fetch once, verify, unpack
    metadata      a competition's evaluation metric from Kaggle's listing (`init`)
    submit        validate, upload, record in the ledger, `wait_for_score`
    listings      `list_submissions`: every page of Kaggle's submissions joined with the ledger
    doctor        the setup checks

What a submission file says about its run (`describe_run`, `recipe_summary`) is `kaggle_kit.submissions.provenance`.
"""

from .client import (
    DEFAULT_HTTP_TIMEOUT_S,
    ENDPOINT_ENV,
    MAX_HTTP_TIMEOUT_S,
    PRODUCTION_API,
    TIMEOUT_ENV,
    api_endpoint,
    http_timeout,
)
from .credentials import TOKEN_PAGE, CredentialSource, credential_source
from .doctor import Check, doctor
from .download import DOWNLOAD_STAMP, DownloadResult, download, fetch
from .listings import LISTING_MAX_PAGES, LISTING_PAGE_SIZE, SubmissionRow, list_submissions
from .metadata import evaluation_metric
from .submit import (
    DEFAULT_WAIT_S,
    MESSAGE_LIMIT,
    POLL_FIRST_S,
    POLL_MAX_S,
    SubmitResult,
    default_message,
    file_sha256,
    submit,
    wait_for_score,
)

__all__ = [
    "DEFAULT_HTTP_TIMEOUT_S",
    "DEFAULT_WAIT_S",
    "DOWNLOAD_STAMP",
    "ENDPOINT_ENV",
    "LISTING_MAX_PAGES",
    "LISTING_PAGE_SIZE",
    "MAX_HTTP_TIMEOUT_S",
    "MESSAGE_LIMIT",
    "POLL_FIRST_S",
    "POLL_MAX_S",
    "PRODUCTION_API",
    "TIMEOUT_ENV",
    "TOKEN_PAGE",
    "Check",
    "CredentialSource",
    "DownloadResult",
    "SubmissionRow",
    "SubmitResult",
    "api_endpoint",
    "credential_source",
    "default_message",
    "doctor",
    "download",
    "evaluation_metric",
    "fetch",
    "file_sha256",
    "http_timeout",
    "list_submissions",
    "submit",
    "wait_for_score",
]
