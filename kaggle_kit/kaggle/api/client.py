"""The official Kaggle client as kaggle-kit builds it, and the one place its failures become KitErrors.

Importing
`kaggle` authenticates on the spot: it prints a page of help (older 2.2.x releases call `exit(1)`)
when it finds no credentials. `_client_class` imports it with its output captured and turns the
`SystemExit` into a `KitError`.

Every Kaggle failure becomes one `KitError` line naming the fix (`_kaggle_call`): no credentials,
401, the three causes of 403 (with the rules URL), 404, 429 (with Retry-After), 5xx,
network down, proxy and TLS trouble, timeouts. Passing failures are first retried within a budget
(`retry.py`); what reaches `_kaggle_call` is what outlasted it. No message ever carries a credential: `_redact`
blanks every secret kaggle-kit can see, and URLs lose their query strings and user-info.

Two settings change how the official client is built (`KitKaggleApi.build_kaggle_client`); nothing
else about the client differs:
- `KAGGLE_KIT_HTTP_TIMEOUT` (seconds, default 60): the client sends requests with no timeout at all,
  so a server that stops answering would hang the command. A transport adapter with this timeout
  is mounted on the session of each client built here, and during a submit the file's PUT (through a
  session the client makes inside the call) gets it too (`_upload_timeout`).
- `KAGGLE_KIT_API_ENDPOINT` (e.g. `http://127.0.0.1:8765`): send the API calls to
  `<endpoint>/api/v1/<service>/<Method>` instead of `https://api.kaggle.com/v1/...` - the path layout
  kagglesdk itself uses for its non-production environments. Request building, authentication,
  JSON (de)serialisation, redirects, the chunked upload and the download are the client's own code,
  unchanged. Unset (the default) the client is exactly the stock production client. The tests use
  it to reach `tests/kaggle_server.py` on an ephemeral loopback port; the client's own switch,
  `KAGGLE_API_ENVIRONMENT=LOCALHOST`, means port 80 on localhost, which concurrent test runs on one
  machine would fight over.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys

from ...competitions.registry import Competition, resolve
from ...core import progress
from ...core.errors import KitError
from .credentials import TOKEN_PAGE, _error, _loose_permissions, _no_credentials_message, credential_source
from .retry import BUDGET_ENV, retry_after_s, retry_budget_s, send_retrying

ENDPOINT_ENV = "KAGGLE_KIT_API_ENDPOINT"
TIMEOUT_ENV = "KAGGLE_KIT_HTTP_TIMEOUT"
DEFAULT_HTTP_TIMEOUT_S = 60.0
MAX_HTTP_TIMEOUT_S = 86_400.0  # a day; larger values overflow the socket layer's deadline arithmetic
PRODUCTION_API = "https://api.kaggle.com"


# =========================================================================== settings


def http_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_HTTP_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_HTTP_TIMEOUT_S:
        raise KitError(
            f"{TIMEOUT_ENV}={raw!r} is not a number of seconds between 0 and {MAX_HTTP_TIMEOUT_S:g}: "
            f"set it to e.g. 60, or unset it"
        )
    return value


def api_endpoint() -> str | None:
    raw = os.environ.get(ENDPOINT_ENV, "").strip()
    if not raw:
        return None
    if not re.match(r"^https?://[^/\s]+", raw):
        raise KitError(
            f"{ENDPOINT_ENV}={raw!r} is not an http(s) URL: set it to e.g. http://127.0.0.1:8765, "
            "or unset it for Kaggle"
        )
    return raw.rstrip("/")


# =========================================================================== the client


def _client_class():
    """`KaggleApi`, imported with its import-time authentication kept quiet and unable to exit."""
    noise = io.StringIO()
    try:
        with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except SystemExit:
        raise _error(_no_credentials_message()) from None
    except ImportError as error:
        raise _error(f"the Kaggle client is not importable ({error}): pip install 'kaggle>=1.7' six") from None
    return KaggleApi


def _send_with_timeout(send, seconds: float):
    """`HTTPAdapter.send` giving every request `seconds` of timeout unless the caller set one."""

    def send_with_timeout(self, request, timeout=None, **kwargs):
        return send(self, request, timeout=seconds if timeout is None else timeout, **kwargs)

    return send_with_timeout


def _timeout_adapter(seconds: float):
    from requests.adapters import HTTPAdapter

    send = send_retrying(_send_with_timeout(HTTPAdapter.send, seconds))
    return type("TimeoutAdapter", (HTTPAdapter,), {"send": send})()


@contextlib.contextmanager
def _upload_timeout(seconds: float):
    """For the length of a submit: every `requests` adapter that sends without a timeout gets `seconds`.

    Why this wide: the client PUTs the file through a `requests.Session` it makes inside the call (not the
    session `_configure_http_client` equips), without any timeout, so a stalled upload server would hang the
    command for good. Its own retry policy (10 tries, backing off) still applies, now to bounded attempts.
    """
    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send
    HTTPAdapter.send = _send_with_timeout(original, seconds)
    try:
        yield
    finally:
        HTTPAdapter.send = original


def _configure_http_client(http_client, endpoint: str | None, timeout: float) -> None:
    from kagglesdk.kaggle_env import KaggleEnv

    try:
        if endpoint:
            # kagglesdk's non-production layout: <endpoint>/api/v1/<service>/<Method>
            http_client._env = KaggleEnv.LOCAL
            http_client._endpoint = endpoint
        http_client._init_session()
        session = http_client._session
        adapter = _timeout_adapter(timeout)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    except AttributeError as error:
        from importlib.metadata import version

        raise _error(
            f"the installed kagglesdk {version('kagglesdk')} no longer has the HTTP client kaggle-kit configures "
            f"({error}): install the tested versions with pip install kaggle==2.2.5 kagglesdk==0.1.38"
        ) from None


def _api():
    """An authenticated official `KaggleApi`, building clients with kaggle-kit's endpoint and timeout."""
    kaggle_api_class = _client_class()
    endpoint, timeout = api_endpoint(), http_timeout()

    class KitKaggleApi(kaggle_api_class):
        def build_kaggle_client(self):
            client = super().build_kaggle_client()
            _configure_http_client(client.http_client(), endpoint, timeout)
            return client

    api = KitKaggleApi()
    source = credential_source()
    if source.file is not None and _loose_permissions(source.file):
        print(f"warning: {source.file} is readable by other users: run chmod 600 {source.file}", file=sys.stderr)
    noise = io.StringIO()
    with _kaggle_call("signing in to Kaggle"):
        try:
            with contextlib.redirect_stdout(noise):
                api.authenticate()
        except SystemExit:
            if source.kind == "token":  # the client drops a token Kaggle calls inactive, then finds nothing else
                raise _error(
                    f"Kaggle did not accept the API token from {source.where} (invalid or expired): create a new one "
                    f"at {TOKEN_PAGE} and save it there"
                ) from None
            raise _error(_no_credentials_message()) from None
    return api


@contextlib.contextmanager
def _quiet_stdout():
    """The client prints progress and notices on stdout; kaggle-kit's stdout carries only results."""
    with contextlib.redirect_stdout(sys.stderr if progress.enabled() else io.StringIO()):
        yield


def _retry_after(response) -> str:
    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    if not value:
        return "wait a few minutes before trying again"
    if value.isdigit():
        return f"Retry-After says wait {value} s"
    return f"Retry-After says wait until {value}"


def _beyond_budget(response) -> str:
    asked = retry_after_s(response.headers.get("Retry-After") if response is not None else None)
    budget = retry_budget_s()
    if asked is not None and asked > budget:
        return f"longer than kaggle-kit's retry budget of {budget:g} s ({BUDGET_ENV})"
    return f"still after retrying for {budget:g} s ({BUDGET_ENV})"


def _network_reason(error: Exception) -> str:
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    for needle in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Connection reset",
        "Connection aborted",
        "RemoteDisconnected",
    ):
        if needle.lower() in text.lower():
            return needle
    return type(error).__name__


def _proxy_hint() -> str:
    names = [
        n
        for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
        if os.environ.get(n)
    ]
    return f" and the proxy in {names[0]}" if names else " (behind a proxy, set HTTPS_PROXY)"


def _http_failure(error, action: str, comp: Competition | None) -> str:
    response = error.response
    code = response.status_code if response is not None else 0
    said = str(error).strip()
    said = f" - Kaggle says: {said[:160]}" if said and not said.startswith(str(code)) else ""
    slug = comp.slug if comp else "the competition"
    if code == 401:
        return (
            f"Kaggle rejected the credentials ({credential_source().describe()}) while {action} (401: the token is "
            f"invalid or expired): create a new API token at {TOKEN_PAGE} and save it to ~/.kaggle/access_token "
            "or KAGGLE_API_TOKEN"
        )
    if code == 403:
        rules = comp.rules_url if comp else "the competition's rules page"
        return (
            f"Kaggle refused {action} (403){said}: accept the competition rules at {rules} (the usual cause); "
            f"otherwise check the slug '{slug}' is spelled right, or the competition is closed to new entrants"
        )
    if code == 404:
        where = comp.url if comp else "kaggle.com"
        return f"Kaggle found nothing while {action} (404){said}: check the competition slug '{slug}' at {where}"
    if code == 429:
        return (
            f"Kaggle is rate limiting this account (429) while {action}: {_retry_after(response)}, "
            f"{_beyond_budget(response)}; run the command again then"
        )
    if code >= 500:
        return (
            f"Kaggle had a server error ({code}) while {action}{said}, still after retrying for "
            f"{retry_budget_s():g} s ({BUDGET_ENV}): this is on Kaggle's side - try again in a few minutes"
        )
    return f"Kaggle answered {code} while {action}{said}: check the command's arguments and try again"


@contextlib.contextmanager
def _kaggle_call(action: str, comp: Competition | None = None):
    """Turn whatever the client raises while doing `action` into one KitError line with the fix."""
    import requests

    try:
        yield
    except KitError as error:
        raise _error(str(error), error.exit_code) from None
    except SystemExit:
        raise _error(_no_credentials_message()) from None
    except requests.exceptions.HTTPError as error:
        raise _error(_http_failure(error, action, comp)) from None
    except requests.exceptions.Timeout:
        raise _error(
            f"Kaggle did not answer within {http_timeout():g} s while {action}: try again later, or allow longer "
            f"with {TIMEOUT_ENV}=SECONDS"
        ) from None
    except requests.exceptions.ProxyError as error:
        raise _error(
            f"the proxy refused the connection while {action} ({_network_reason(error)}): "
            "check HTTPS_PROXY/HTTP_PROXY; `kaggle-kit doctor` shows them"
        ) from None
    except requests.exceptions.SSLError:
        raise _error(
            f"TLS verification failed while {action}: behind an intercepting proxy, "
            "point REQUESTS_CA_BUNDLE at its CA certificate"
        ) from None
    except requests.exceptions.ConnectionError as error:
        host = api_endpoint() or PRODUCTION_API
        raise _error(
            f"cannot reach Kaggle at {host} while {action} ({_network_reason(error)}): check the network connection"
            f"{_proxy_hint()}; `kaggle-kit doctor` checks the setup"
        ) from None
    except requests.exceptions.RequestException as error:
        raise _error(
            f"the request to Kaggle failed while {action} ({type(error).__name__}: {error}): try again"
        ) from None


def _competition(competition: Competition | str) -> Competition:
    return competition if isinstance(competition, Competition) else resolve(competition)
