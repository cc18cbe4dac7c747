"""Kaggle through its official client: download a competition, submit and poll, list submissions, doctor.

This is the only module that imports `kaggle` and `kagglesdk`, always inside a function. Importing
`kaggle` authenticates on the spot: it prints a page of help (older 2.2.x releases call `exit(1)`)
when it finds no credentials. `_client_class` imports it with its output captured and turns the
`SystemExit` into a `KitError`.

Every Kaggle failure becomes one `KitError` line naming the fix (`_kaggle_call`): no credentials,
401, the three causes of 403 (with the rules URL), 404, 429 (with Retry-After, and no retry), 5xx,
network down, proxy and TLS trouble, timeouts. No message ever carries a credential: `_redact`
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
import hashlib
import io
import json
import lzma
import os
import re
import stat
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import progress
from .archive import check_free_space
from .competition import Competition, all_competitions, resolve
from .errors import KitError
from .ledger import COMPLETE, ERROR, PENDING, UPLOAD_FAILED, UPLOADING, Ledger, LedgerRecord
from .runs import RunInfo, describe_run

ENDPOINT_ENV = "KAGGLE_KIT_API_ENDPOINT"
TIMEOUT_ENV = "KAGGLE_KIT_HTTP_TIMEOUT"
DEFAULT_HTTP_TIMEOUT_S = 60.0
MAX_HTTP_TIMEOUT_S = 86_400.0  # a day; larger values overflow the socket layer's deadline arithmetic
DEFAULT_WAIT_S = 1800.0
# Scoring takes seconds to minutes: poll soon, then back off to a polite interval.
POLL_FIRST_S = 1.0
POLL_MAX_S = 30.0
PRODUCTION_API = "https://api.kaggle.com"
TOKEN_PAGE = "https://www.kaggle.com/settings/api"
DOWNLOAD_STAMP = ".kaggle-kit-download.json"
LISTING_PAGE_SIZE = 100
LISTING_MAX_PAGES = 100  # 10,000 submissions: more than any competition allows a team
MESSAGE_LIMIT = 250  # Kaggle truncates long submission descriptions


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
        raise KitError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds between 0 and {MAX_HTTP_TIMEOUT_S:g}: "
                       f"set it to e.g. 60, or unset it")
    return value


def api_endpoint() -> str | None:
    raw = os.environ.get(ENDPOINT_ENV, "").strip()
    if not raw:
        return None
    if not re.match(r"^https?://[^/\s]+", raw):
        raise KitError(f"{ENDPOINT_ENV}={raw!r} is not an http(s) URL: set it to e.g. http://127.0.0.1:8765, or unset it for Kaggle")
    return raw.rstrip("/")


# =========================================================================== secrets


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _config_file() -> Path:
    """kaggle.json where the client looks for it (`KaggleApi.config`; the same rule without importing it)."""
    folder = os.environ.get("KAGGLE_CONFIG_DIR")
    if not folder:
        folder = os.path.join(os.path.expanduser("~"), ".kaggle")
        if sys.platform.startswith("linux") and not os.path.exists(folder):
            folder = os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"), "kaggle")
    return Path(folder) / "kaggle.json"


def _token_files() -> list[Path]:
    home = Path(os.path.expanduser("~/.kaggle"))
    return [home / "access_token", home / "access_token.txt"]


def _oauth_file() -> Path:
    return Path(os.path.expanduser("~/.kaggle/credentials.json"))


def _secret_values() -> list[str]:
    """Every credential value kaggle-kit can see, so that none of them is ever printed."""
    values = [os.environ.get("KAGGLE_KEY", ""), os.environ.get("KAGGLE_API_TOKEN", "")]
    token_env = os.environ.get("KAGGLE_API_TOKEN", "")
    if token_env and os.path.isfile(token_env):
        values.append(_read_text(Path(token_env)))
    values += [_read_text(p) for p in _token_files()]
    values.append(str(_read_json(_config_file()).get("key", "")))
    values += [str(v) for v in _read_json(_oauth_file()).values() if isinstance(v, str)]
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _redact(text: str) -> str:
    for secret in _secret_values():
        text = text.replace(secret, "***")
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)  # user:password@ in proxy URLs
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\")]*", r"\1", text)  # signed query strings


def _error(message: str, exit_code: int | None = None) -> KitError:
    return KitError(_redact(" ".join(message.split())), exit_code)


# =========================================================================== credentials


@dataclass
class CredentialSource:
    """Which credentials the client will try first; describes, never holds, the secret."""

    kind: str  # "token", "legacy key", "oauth", or "none"
    where: str  # an environment variable or a file path
    username: str | None = None
    file: Path | None = None  # the file holding the secret, when it is a file

    def describe(self) -> str:
        if self.kind == "none":
            return "no credentials"
        user = f" (user {self.username})" if self.username else ""
        return f"{self.kind} from {self.where}{user}"


def credential_source() -> CredentialSource:
    """The first credentials in the client's order: token (env, file), legacy key (env over kaggle.json), OAuth."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and os.environ.get("KAGGLE_DATA_PROXY_URL"):
        notebook_token = os.environ.get("KAGGLE_API_V1_TOKEN")
        if notebook_token and _read_text(Path(notebook_token)):
            return CredentialSource("token", f"the Kaggle notebook's {notebook_token}", file=Path(notebook_token))
    token_env = os.environ.get("KAGGLE_API_TOKEN")
    if token_env:
        if os.path.exists(token_env):
            return CredentialSource("token", f"the file named by KAGGLE_API_TOKEN ({token_env})", file=Path(token_env))
        return CredentialSource("token", "the KAGGLE_API_TOKEN environment variable")
    for path in _token_files():
        if _read_text(path):
            return CredentialSource("token", str(path), file=path)
    config = _config_file()
    stored = _read_json(config)
    user_env, key_env = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    username = user_env or stored.get("username")
    if username and (key_env or stored.get("key")):
        if user_env and key_env:
            return CredentialSource("legacy key", "the KAGGLE_USERNAME/KAGGLE_KEY environment variables", username)
        if not user_env and not key_env:
            return CredentialSource("legacy key", str(config), username, file=config)
        from_env = "KAGGLE_USERNAME" if user_env else "KAGGLE_KEY"
        return CredentialSource("legacy key", f"{config} with {from_env} from the environment", username, file=config)
    if _oauth_file().is_file():
        return CredentialSource("oauth", str(_oauth_file()), file=_oauth_file())
    return CredentialSource("none", "")


def _config_problem() -> str | None:
    """Why kaggle.json, when it is there, gives no credentials (a user who made one must hear what is wrong with it)."""
    path = _config_file()
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        return f"{path} cannot be read ({error.strerror})"
    except ValueError:
        return f"{path} is not valid JSON"
    if not isinstance(data, dict) or not data.get("username") or not data.get("key"):
        return f'{path} lacks "username" or "key"'
    return None


def _no_credentials_message() -> str:
    problem = _config_problem()
    if problem:
        return (
            f"no usable Kaggle credentials: {problem} (it should hold {{\"username\": ..., \"key\": ...}} as "
            f"downloaded from {TOKEN_PAGE}): fix or replace it, or save an API token to ~/.kaggle/access_token (chmod 600)"
        )
    return (
        f"no Kaggle credentials found: create an API token at {TOKEN_PAGE} (Settings > API > Generate New Token) "
        "and save it to ~/.kaggle/access_token (chmod 600), or set KAGGLE_API_TOKEN, or run `kaggle auth login`"
    )


def _loose_permissions(path: Path) -> bool:
    try:
        return os.name != "nt" and bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


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

    return type("TimeoutAdapter", (HTTPAdapter,), {"send": _send_with_timeout(HTTPAdapter.send, seconds)})()


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


def _network_reason(error: Exception) -> str:
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    for needle in ("Connection refused", "Name or service not known", "timed out", "Connection reset", "Connection aborted", "RemoteDisconnected"):
        if needle.lower() in text.lower():
            return needle
    return type(error).__name__


def _proxy_hint() -> str:
    names = [n for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(n)]
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
            f"invalid or expired): create a new API token at {TOKEN_PAGE} and save it to ~/.kaggle/access_token or KAGGLE_API_TOKEN"
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
        return f"Kaggle is rate limiting this account (429) while {action}: {_retry_after(response)}, then run the command again; kaggle-kit does not retry"
    if code >= 500:
        return f"Kaggle had a server error ({code}) while {action}{said}: this is on Kaggle's side - try again in a few minutes"
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
        raise _error(f"the proxy refused the connection while {action} ({_network_reason(error)}): check HTTPS_PROXY/HTTP_PROXY; `kaggle-kit doctor` shows them") from None
    except requests.exceptions.SSLError:
        raise _error(
            f"TLS verification failed while {action}: behind an intercepting proxy, point REQUESTS_CA_BUNDLE at its CA certificate"
        ) from None
    except requests.exceptions.ConnectionError as error:
        host = api_endpoint() or PRODUCTION_API
        raise _error(
            f"cannot reach Kaggle at {host} while {action} ({_network_reason(error)}): check the network connection"
            f"{_proxy_hint()}; `kaggle-kit doctor` checks the setup"
        ) from None
    except requests.exceptions.RequestException as error:
        raise _error(f"the request to Kaggle failed while {action} ({type(error).__name__}: {error}): try again") from None


def _competition(competition: Competition | str) -> Competition:
    return competition if isinstance(competition, Competition) else resolve(competition)


# =========================================================================== download


@dataclass
class DownloadResult:
    competition: Competition
    data_dir: Path
    archive: Path | None  # the verified download zip (None when the data was already unpacked without one)
    downloaded: bool  # False: already there, nothing fetched
    size: int  # bytes of the archive
    root: Path  # the unpacked data
    n_train: int
    n_test: int
    n_classes: int


def _stamp(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "verified": "zip CRCs"}


def _verify_zip(path: Path, what: str, fix: str) -> None:
    """Every member's CRC, so that a damaged download is caught before anything is unpacked."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError) as error:
        # zlib/lzma: a member's compressed bytes are damaged; NotImplementedError: an unknown compression method;
        # RuntimeError: an encrypted member
        raise _error(f"{what} is not a readable zip ({type(error).__name__}: {error}): {fix}") from None
    if bad is not None:
        raise _error(f"{what} is damaged (member {bad} fails its CRC check): {fix}")


def _verified(archive: Path, comp: Competition) -> None:
    """Check an existing download once; a stamp beside it skips the check until the file changes."""
    stamp_path = archive.parent / DOWNLOAD_STAMP
    if _read_json(stamp_path) == _stamp(archive):
        return
    _verify_zip(archive, str(archive), f"delete it and run `kaggle-kit download {comp.name} --force`")
    _write_stamp(archive)


def _write_stamp(archive: Path) -> None:
    stamp_path = archive.parent / DOWNLOAD_STAMP
    tmp = stamp_path.with_name(stamp_path.name + ".tmp")
    tmp.write_text(json.dumps(_stamp(archive)))
    os.replace(tmp, stamp_path)


def _unpack_and_read(comp: Competition, data_dir: Path, archive: Path | None, downloaded: bool) -> DownloadResult:
    from . import archive as archives

    if archive is not None and downloaded:
        members = archives.zip_members(archive)
        check_free_space(data_dir, sum(m.file_size for m in members), f"unpacking {archive.name}")
    from .layout import open_layout

    layout = open_layout(comp, data_dir)  # unpacking takes its own lock: concurrent processes are safe
    return DownloadResult(
        competition=comp,
        data_dir=data_dir,
        archive=archive,
        downloaded=downloaded,
        size=archive.stat().st_size if archive is not None else 0,
        root=layout.root,
        n_train=len(layout.train.ids),
        n_test=len(layout.test.ids),
        n_classes=len(layout.classes),
    )


def download(competition: Competition | str, data_dir: Path | str | None = None, force: bool = False) -> DownloadResult:
    """Fetch the competition's whole bundle once with the official client, verify it, unpack it.

    Re-running is a no-op: a verified `<slug>.zip` (or an already unpacked folder) in `data_dir` is
    used as it is, without contacting Kaggle, unless `force`. The bundle is written as
    `<slug>.zip.part` and renamed only once its size and every member's CRC check out.
    """
    from .layout import UNPACK_MARKER, default_data_dir

    comp = _competition(competition)
    data_dir = Path(data_dir) if data_dir else default_data_dir(comp)
    if data_dir.exists() and not data_dir.is_dir():
        raise _error(f"--data-dir {data_dir} is a file: pass the folder to download into (default data/{comp.slug})")
    archive = data_dir / comp.archive_name
    if not force:
        if archive.is_file():
            _verified(archive, comp)
            try:
                return _unpack_and_read(comp, data_dir, archive, downloaded=False)
            except KitError as error:  # unpacked files deleted or damaged since: unpack the verified zip again
                print(f"warning: {data_dir} is incomplete ({error}); unpacking {archive.name} again", file=sys.stderr)
                (data_dir / UNPACK_MARKER).unlink(missing_ok=True)
                return _unpack_and_read(comp, data_dir, archive, downloaded=True)
        if (data_dir / comp.sample_file).is_file():
            try:
                return _unpack_and_read(comp, data_dir, None, downloaded=False)
            except KitError as error:  # unpacked files without their zip, some missing or broken: fetch them again
                print(f"warning: {data_dir} holds an incomplete download ({error}); downloading {comp.slug} again", file=sys.stderr)

    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    api = _api()
    partial = archive.with_name(archive.name + ".part")
    action = f"downloading {comp.slug}"
    progress.say(f"downloading {comp.slug} from Kaggle into {data_dir}")
    with _kaggle_call(action, comp):
        with api.build_kaggle_client() as client:
            request = ApiDownloadDataFilesRequest()
            request.competition_name = comp.slug
            response = client.competitions.competition_api_client.download_data_files(request)
            served = response.url.split("?")[0].rsplit("/", 1)[-1]
            if not served.endswith(".zip"):
                response.close()
                raise _error(f"Kaggle served {served} for {comp.slug}, not a zip: kaggle-kit reads only the zip bundle; report this")
            expected = int(response.headers.get("Content-Length") or 0) or None
            if expected:
                have = partial.stat().st_size if partial.is_file() else 0
                check_free_space(data_dir, expected - have, f"downloading {comp.archive_name}")
            try:
                with _quiet_stdout():
                    api.download_file(response, str(partial), client.http_client(), quiet=not progress.enabled(), resume=True)
            except ValueError as error:  # the client's size check: fewer bytes than Content-Length
                raise _error(f"the download of {comp.archive_name} stopped early ({error}): run the command again to resume") from None
    if expected and partial.stat().st_size != expected:
        raise _error(f"{partial}: {partial.stat().st_size} bytes, Kaggle announced {expected}: run the command again to resume")
    try:
        _verify_zip(partial, f"the download of {comp.archive_name}", f"it was deleted - run `kaggle-kit download {comp.name}` again")
    except KitError:
        partial.unlink(missing_ok=True)
        Path(str(partial) + ".kaggle-partial").unlink(missing_ok=True)
        raise
    os.replace(partial, archive)
    _write_stamp(archive)
    # a new bundle replaces every unpacked file, even when Kaggle's Last-Modified gives it the old zip's stamp
    (data_dir / UNPACK_MARKER).unlink(missing_ok=True)
    return _unpack_and_read(comp, data_dir, archive, downloaded=True)


# =========================================================================== submit


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_message(file: Path, run: RunInfo, sha256: str) -> str:
    """Run name, short config and file hash: enough to find the run again from Kaggle's page."""
    parts = [run.name or file.name]
    if run.recipe:
        parts.append(run.recipe)
    if run.config.get("tta"):
        parts.append("tta")
    if run.config.get("temperature"):
        parts.append(f"T={float(run.config['temperature']):.2f}")
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


def _sample_path(comp: Competition, data_dir) -> Path:
    try:
        from .layout import find_sample_path

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
        with _kaggle_call(f"checking submission {ref} (it was submitted; `kaggle-kit submissions {comp.name}` shows it later)", comp):
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
                f"submission {ref}{' of ' + file_name if file_name else ''} is still {status} after {timeout:g} s: Kaggle goes on "
                f"scoring it - see the score later with `kaggle-kit submissions {comp.name}`"
            )
        progress.say(f"submission {ref}: {status}, next check in {min(delay, remaining):.0f} s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, POLL_MAX_S)


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
    from . import submission as submissions

    file = Path(file)
    if not file.is_file():
        raise _error(f"{file}: no such file: pass the CSV written by `kaggle-kit predict` (submissions/<competition>/<run>.csv)")
    if not timeout > 0:  # also NaN, which compares false with everything and would wait forever
        raise _error(f"--timeout {timeout:g}: give a positive number of seconds to wait for the score")
    try:
        comp, run = describe_run(file, competition, run_dir)
    except KitError as error:  # the run folder's messages get the same redaction as every other here
        raise _error(str(error), error.exit_code) from None
    data_dir = data_dir or run.config.get("data_dir") or None
    problems = submissions.validate(file, comp, _sample_path(comp, data_dir))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise _error(f"{file} was not uploaded: {len(problems)} problem{'s' if len(problems) > 1 else ''}: {shown}; run `kaggle-kit validate {file}` for details")

    sha256 = file_sha256(file)
    message = (message or default_message(file, run, sha256)).strip()
    api = _api()  # credentials first: no ledger record for a submit that never reached Kaggle
    ledger = ledger or Ledger()
    record = ledger.add(
        comp.name, file, sha256,
        run=run.name, run_dir=str(run.run_dir) if run.run_dir else None, recipe=run.recipe,
        metric=comp.metric.name, local_score=run.local_score, message=message,
    )
    result = SubmitResult(comp, file, sha256, message, record, run)

    progress.say(f"uploading {file} to {comp.slug}")
    try:
        with _kaggle_call(f"uploading {file.name} to {comp.slug}", comp):
            # the client prints upload errors; its upload session gets our timeout (see _upload_timeout)
            with contextlib.redirect_stdout(io.StringIO()) as said, _upload_timeout(http_timeout()):
                created = api.competition_submit(str(file), message, comp.slug, quiet=True)
            if created.message == api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE or not created.ref:
                detail = " ".join(said.getvalue().split())[:160] or created.message or "no submission ref returned"
                raise _error(f"the upload of {file.name} to Kaggle failed ({detail}): nothing was submitted - try again")
    except KitError as error:
        ledger.update(record.id, status=UPLOAD_FAILED, error=str(error))
        raise
    result.ref = int(created.ref)
    ledger.update(record.id, kaggle_ref=result.ref, status=PENDING)
    if not wait:
        return result

    try:
        scored = wait_for_score(api, comp, result.ref, timeout, file.name)
    except KeyboardInterrupt:
        raise _error(
            f"interrupted while waiting for the score: {file.name} was submitted as submission {result.ref} and "
            f"Kaggle goes on scoring it - see the score with `kaggle-kit submissions {comp.name}`", exit_code=130
        ) from None
    result.status = scored.status.name
    if result.status == ERROR:
        reason = " ".join((scored.error_description or "no reason given").split())
        ledger.update(record.id, status=ERROR, error=reason)
        raise _error(f"Kaggle could not score {file.name} (submission {result.ref}): {reason}: fix the file and submit again")
    result.public_score, result.private_score = _score(scored.public_score), _score(scored.private_score)
    ledger.update(record.id, status=COMPLETE, public_score=result.public_score, private_score=result.private_score)
    return result


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
            chunk = [s for s in api.competition_submissions(slug, page_number=page, page_size=LISTING_PAGE_SIZE) or []
                     if s is not None]
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
    orphans = [r for r in ledger.records(comp.name) if r.kaggle_ref is None and r.status == UPLOADING]
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
            if record.status != status and (status in (COMPLETE, ERROR) or record.status == UPLOADING):
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


# =========================================================================== doctor


@dataclass
class Check:
    name: str
    ok: bool | None  # None: information only
    detail: str
    fix: str = ""


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {sys.version.split()[0]}"]
    for package in ("kaggle-kit", "kaggle", "kagglesdk", "requests"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package} missing")
    return ", ".join(parts)


def _proxies() -> str:
    names = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")
    found = [f"{n}={_redact(os.environ[n])}" for n in names if os.environ.get(n)]
    return ", ".join(found) if found else "none set (direct connection)"


def doctor(competition: Competition | str | None = None) -> list[Check]:
    """Versions, credential source, kaggle.json permissions, proxies, and one authenticated call per competition."""
    checks = [Check("versions", None, _versions())]
    endpoint = api_endpoint()
    checks.append(Check("endpoint", None, f"{endpoint} ({ENDPOINT_ENV})" if endpoint else f"{PRODUCTION_API} (production)"))
    source = credential_source()
    if source.kind == "none":
        problem = _config_problem()
        checks.append(Check("credentials", False, problem or "no credentials found", _no_credentials_message().split(": ", 1)[1]))
    else:
        checks.append(Check("credentials", True, source.describe()))
    secret_files = [p for p in (_config_file(), *_token_files(), _oauth_file()) if p.is_file()]
    loose = [p for p in secret_files if _loose_permissions(p)]
    if loose:
        checks.append(Check("permissions", False, f"{', '.join(map(str, loose))} readable by other users", f"chmod 600 {' '.join(map(str, loose))}"))
    elif secret_files:
        checks.append(Check("permissions", True, f"{', '.join(map(str, secret_files))} private to you"))
    else:
        checks.append(Check("permissions", None, f"no credential files ({_config_file()} absent)"))
    checks.append(Check("proxy", None, _proxies()))

    comps = [_competition(competition)] if competition else list(all_competitions().values())
    if source.kind == "none":
        checks.append(Check("kaggle call", False, "skipped: no credentials", "create credentials first (see above)"))
        return checks
    try:
        api = _api()
    except KitError as error:
        checks.append(Check("kaggle call", False, str(error)))
        return checks
    for comp in comps:
        try:
            with _kaggle_call(f"listing submissions of {comp.slug}", comp):
                with _quiet_stdout():
                    listed = api.competition_submissions(comp.slug, page_size=1) or []
        except KitError as error:
            checks.append(Check(f"kaggle call ({comp.name})", False, str(error)))
            continue
        checks.append(Check(f"kaggle call ({comp.name})", True, f"signed in; submissions of {comp.slug} readable ({len(listed)} on the first page)"))
    return checks
