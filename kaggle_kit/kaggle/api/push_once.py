"""`push`'s creating calls (a dataset, a dataset version, a notebook version) made exactly once.

The transport never resends a call that creates something (retry.py): an answer lost on the way back would make
a second version. So the push makes them here: a 429 (Kaggle refused, nothing was made) is sent again after the
wait Kaggle asks for; after a 5xx, a reset connection or no answer, kaggle-kit first asks Kaggle how many
versions the dataset or notebook has now. One more than before the call: the lost answer's call took effect,
and the push goes on with it. None more: the call is sent again, within the retry budget. When Kaggle cannot be
asked either, the state is unknown and said so in one line, with where to look before pushing again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from ...core import progress
from .credentials import _error
from .retry import RetryPolicy
from .upload import _ambiguous

Made = TypeVar("Made")


def create_once(what: str, page: str, send: Callable[[], Made], versions: Callable[[], int]) -> Made | None:
    """`send`'s answer, or None when its answer was lost but Kaggle shows the call took effect (`versions`, the
    count of versions, grew). `what` names the thing in messages, `page` is where a user sees its versions."""
    import requests

    before = versions()
    policy = RetryPolicy()
    while True:
        try:
            return send()
        except requests.exceptions.RequestException as error:
            reason = _ambiguous(error)
            if reason == "429":
                wait = policy.next_wait(error.response.headers.get("Retry-After"))
            elif reason is not None:
                if _arrived(what, page, versions, before, reason):
                    progress.say(f"Kaggle: {reason} on creating {what}, but it was made: going on with it")
                    return None
                wait = policy.next_wait()
            if reason is None or wait is None:
                raise  # the caller's `_kaggle_call` words it
        progress.say(f"Kaggle: {reason} on creating {what}, try {policy.attempts + 1} in {wait:g} s")
        time.sleep(wait)


def _arrived(what: str, page: str, versions: Callable[[], int], before: int, reason: str) -> bool:
    try:
        now = versions()
    except Exception as error:
        raise _error(
            f"creating {what} failed ({reason}) and Kaggle could not be asked whether it was made "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}): its state is unknown - "
            f"see {page} before pushing again"
        ) from None
    return now > before


@contextlib.contextmanager
def client_retry_off(api):
    """The official client resends CreateDataset and CreateDatasetVersion itself (`with_retry`: ten tries after
    any failure, a lost answer included), which would make a second version: off while `create_once` sends them.
    The safe calls inside (the blob uploads' Start*Upload) are still retried by kaggle-kit's transport (retry.py)."""
    api.with_retry = lambda func, *args, **kwargs: func
    try:
        yield
    finally:
        del api.with_retry


def dataset_versions(api, ref: str) -> int:
    """The dataset's current version number; 0 when Kaggle does not have it."""
    import json

    import requests

    try:
        state = json.loads(api.dataset_status(ref, format="json(current_version_number)"))
    except requests.exceptions.HTTPError as error:
        if getattr(error.response, "status_code", None) == 404:
            return 0
        raise
    return int(state.get("current_version_number") or 0)


def notebook_versions(api, ref: str) -> int:
    """The notebook's current version number (Kaggle's GetKernel); 0 when Kaggle does not have it."""
    import requests
    from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelRequest

    request = ApiGetKernelRequest()
    request.user_name, _, request.kernel_slug = ref.partition("/")
    try:
        with api.build_kaggle_client() as client:
            found = client.kernels.kernels_api_client.get_kernel(request)
    except requests.exceptions.HTTPError as error:
        if getattr(error.response, "status_code", None) == 404:
            return 0
        raise
    return int(found.metadata.current_version_number or 0) if found.metadata else 0
