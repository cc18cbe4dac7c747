"""Retrying Kaggle's passing failures (429, 5xx, a reset connection, an answer that never comes) within a budget.

The declared budget: each Kaggle call is tried again with backoff (1 s, then doubling up to 30 s; a 429's
`Retry-After` when it gives one) for at most `KAGGLE_KIT_RETRY_BUDGET` seconds (default 60) after its first
try, and at most `MAX_ATTEMPTS` times. A wait that would end past the budget is not started: the failure is
reported at once, in one line, with what Kaggle asked for.

Only calls that are safe to send twice are retried by the transport (`send_retrying`): Kaggle's reads
(`Get*`, `List*`), the requests for an upload URL (`Start*Upload`, a fresh URL each time), `Download*` and the
token check. Calls that create something (`CreateSubmission`, `CreateDataset*`, `SaveKernel`) are never resent
blindly: an answer lost on the way back would make a second submission. `submit` retries them itself, after
asking Kaggle whether the first one arrived.

Hand-written because urllib3's `Retry` resends by HTTP verb (every Kaggle call is a POST, reads and creations
alike) and cannot be told which POSTs are safe; the client's own `with_retry` wraps only a few calls and waits
up to ten times without a budget.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from dataclasses import dataclass, field

from ...core import progress
from ...core.errors import KitError

BUDGET_ENV = "KAGGLE_KIT_RETRY_BUDGET"
DEFAULT_BUDGET_S = 60.0
MAX_BUDGET_S = 3600.0
MAX_ATTEMPTS = 8
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SAFE_METHOD = re.compile(r"/api/v1/[\w.]+/(Get\w*|List\w*|Start\w*Upload|Download\w*|IntrospectToken)$")


def retry_budget_s() -> float:
    raw = os.environ.get(BUDGET_ENV)
    if not raw:
        return DEFAULT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_BUDGET_S:
        raise KitError(
            f"{BUDGET_ENV}={raw!r} is not a number of seconds between 0 and {MAX_BUDGET_S:g}: "
            "set it to e.g. 60 (0 turns retrying off), or unset it"
        )
    return value


def retry_after_s(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date), or None when it says nothing usable."""
    value = (value or "").strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass
class RetryPolicy:
    """The budget of one Kaggle call: how many tries are left and until when waiting is allowed."""

    budget_s: float = field(default_factory=retry_budget_s)
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)
    last_wait_s: float = 0.0

    def next_wait(self, retry_after: str | None = None) -> float | None:
        """Seconds to wait before the next try, or None: give up (out of tries, or the wait outlasts the budget)."""
        self.attempts += 1
        if self.attempts >= MAX_ATTEMPTS:
            return None
        asked = retry_after_s(retry_after)
        wait = asked if asked is not None else min(BACKOFF_FIRST_S * 2 ** (self.attempts - 1), BACKOFF_MAX_S)
        if time.monotonic() + wait > self.started + self.budget_s:
            return None
        self.last_wait_s = wait
        return wait

    def describe(self) -> str:
        return f"{self.attempts} tries within kaggle-kit's retry budget of {self.budget_s:g} s ({BUDGET_ENV})"


def transient_status(status: int) -> bool:
    return status in RETRY_STATUSES


def send_retrying(send):
    """`HTTPAdapter.send` that resends a safe Kaggle call (see the module docstring) after a passing failure."""
    import requests

    def send_with_retry(self, request, **kwargs):
        if request.method != "POST" or not SAFE_METHOD.search(request.path_url.split("?")[0]):
            return send(self, request, **kwargs)
        policy = RetryPolicy()
        while True:
            try:
                response = send(self, request, **kwargs)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                wait = policy.next_wait()
                if wait is None:
                    raise
                what = type(error).__name__
            else:
                if not transient_status(response.status_code):
                    return response
                wait = policy.next_wait(response.headers.get("Retry-After"))
                if wait is None:
                    return response
                what = f"HTTP {response.status_code}"
                response.close()
            method = request.path_url.rsplit("/", 1)[-1]
            progress.say(f"Kaggle: {what} on {method}, try {policy.attempts + 1} in {wait:g} s")
            time.sleep(wait)

    return send_with_retry
