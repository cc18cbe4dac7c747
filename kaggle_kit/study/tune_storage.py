"""Where a `tune` study lives: Optuna's journal file in the study folder (the default), or a database server.

The journal file (JournalStorage over JournalFileBackend) takes a lock per write, so several processes on one
machine, or on machines sharing the folder, work on one study with no server to start. PostgreSQL or MySQL
(RDBStorage) is for machines that share no folder; there a worker records a heartbeat, and a trial whose worker
stopped beating (killed, machine lost) is marked failed and retried with its parameters by the next worker to
start a trial. SQLite is refused: it locks the whole file on every write, so concurrent workers fail with
"database is locked", and the journal file already serves one machine.

A database URL carries its password: only `redact`'s form is ever printed, stored in study.json or in a run.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import KitError

JOURNAL = "journal.log"
SERVERS = ("postgresql", "mysql")
DEFAULT_HEARTBEAT_S = 60


def redact(url: str | None) -> str | None:
    """`url` with its password replaced by ***, as it may be printed or written anywhere."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://", 1)[0] + "://***"


def redact_arguments(arguments: list[str]) -> list[str]:
    """A command line with every database URL's password replaced (`--storage URL` and `--storage=URL`)."""
    said = []
    for argument in arguments:
        flag, equals, value = argument.partition("=") if argument.startswith("--") else ("", "", argument)
        said.append(f"{flag}{equals}{redact(value)}" if "://" in value and "@" in value else argument)
    return said


def check_url(url: str) -> None:
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        raise KitError(
            f"--storage {redact(url)}: SQLite locks the whole database on every write, so concurrent workers fail "
            "with 'database is locked'; leave --storage out (the journal file in the study folder serves every "
            "process on this machine) or use postgresql://USER:PASSWORD@HOST/DB for several machines"
        )
    if scheme not in SERVERS:
        raise KitError(
            f"--storage {redact(url)}: give a postgresql://USER:PASSWORD@HOST:PORT/DB or mysql://... URL "
            "(or leave it out for the journal file in the study folder)"
        )


def open_storage(url: str | None, study_dir: Path, heartbeat_s: int = DEFAULT_HEARTBEAT_S):
    """The Optuna storage of the study in `study_dir`: its journal file, or the database at `url`."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None:
        study_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(study_dir / JOURNAL)))
    check_url(url)
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    try:
        with warnings.catch_warnings():  # "experimental": the heartbeat is Optuna's documented way to recover
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat_s,
                grace_period=2 * heartbeat_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
    except ImportError:  # SQLAlchemy found no driver for the URL's database
        raise KitError(
            f"--storage {redact(url)}: no database driver is installed: pip install 'kaggle-kit[postgres]' "
            "(psycopg) or, for MySQL, pymysql with a mysql+pymysql:// URL"
        ) from None
    except Exception as error:  # sqlalchemy's OperationalError and kin, whose text may hold the URL
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise KitError(
            f"--storage {redact(url)}: cannot open the database ({_without_password(reason, url)}); "
            "check the server, the user and the database name"
        ) from None


def _without_password(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(password, "***") if password else text
