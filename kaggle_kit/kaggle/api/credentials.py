"""Kaggle credentials as the official client finds them, and the redaction that keeps them out of every message.

`credential_source` names (never holds) the first credentials in the client's order. `_redact` blanks every
secret kaggle-kit can see, and URLs lose their query strings and user-info; `_error` builds every KitError of
this package through it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import KitError
from ...core.json_files import read_json_object

TOKEN_PAGE = "https://www.kaggle.com/settings/api"


# =========================================================================== secrets


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
            folder = os.path.join(
                os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"), "kaggle"
            )
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
    values.append(str(read_json_object(_config_file()).get("key", "")))
    values += [str(v) for v in read_json_object(_oauth_file()).values() if isinstance(v, str)]
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
    stored = read_json_object(config)
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
            f'no usable Kaggle credentials: {problem} (it should hold {{"username": ..., "key": ...}} as '
            f"downloaded from {TOKEN_PAGE}): fix or replace it, "
            "or save an API token to ~/.kaggle/access_token (chmod 600)"
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
