"""`doctor`: versions, credential source, file permissions, proxies, and one signed-in call per competition."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from ...competitions.registry import Competition, all_competitions
from ...core.errors import KitError
from .client import ENDPOINT_ENV, PRODUCTION_API, _api, _competition, _kaggle_call, _quiet_stdout, api_endpoint
from .credentials import (
    _config_file,
    _config_problem,
    _loose_permissions,
    _no_credentials_message,
    _oauth_file,
    _redact,
    _token_files,
    credential_source,
)

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
    checks.append(
        Check("endpoint", None, f"{endpoint} ({ENDPOINT_ENV})" if endpoint else f"{PRODUCTION_API} (production)")
    )
    source = credential_source()
    if source.kind == "none":
        problem = _config_problem()
        checks.append(
            Check("credentials", False, problem or "no credentials found", _no_credentials_message().split(": ", 1)[1])
        )
    else:
        checks.append(Check("credentials", True, source.describe()))
    secret_files = [p for p in (_config_file(), *_token_files(), _oauth_file()) if p.is_file()]
    loose = [p for p in secret_files if _loose_permissions(p)]
    if loose:
        checks.append(
            Check(
                "permissions",
                False,
                f"{', '.join(map(str, loose))} readable by other users",
                f"chmod 600 {' '.join(map(str, loose))}",
            )
        )
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
        checks.append(
            Check(
                f"kaggle call ({comp.name})",
                True,
                f"signed in; submissions of {comp.slug} readable ({len(listed)} on the first page)",
            )
        )
    return checks
