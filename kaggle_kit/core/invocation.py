"""The command line this process is running: the process's own, or the list `cli.main` was called with.

Called from Python (a notebook, the tests), `sys.argv` is the caller's, so the launcher of `--nproc` workers and
the run's recorded `command` would describe another program. `cli.main` says what it was given; both ask here.
What is recorded (`command`, in every run's config.json and every study) never holds a credential: `redacted`.
"""

from __future__ import annotations

import re
import sys

# a flag whose value is a credential (--token, --api-key, --password, --secret=...): its value is never recorded
SECRET_FLAG = re.compile(r"^--?(\w+-)*(token|key|password|passwd|secret|credentials?)(-\w+)*$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^@\s]*@")  # scheme://user:PASSWORD@host
HIDDEN = "***"

_given: list[str] | None = None


def set_arguments(argv: list[str] | None) -> list[str] | None:
    """Record the arguments `cli.main` runs (None: the process's own); returns the ones recorded before."""
    global _given
    before, _given = _given, None if argv is None else [str(arg) for arg in argv]
    return before


def arguments() -> list[str]:
    """The command's arguments, without the program name."""
    return list(sys.argv[1:]) if _given is None else list(_given)


def command() -> list[str]:
    """The command as a person would type it again, credentials hidden (what runs and studies record)."""
    return redacted(list(sys.argv) if _given is None else ["kaggle-kit", *_given])


def redacted(argv: list[str]) -> list[str]:
    """`argv` with every credential replaced by ***: a secret flag's value (`--token X`, `--api-key=X`) and the
    password of a URL (`postgresql://user:PASSWORD@host/db`), wherever it stands."""
    said: list[str] = []
    for position, argument in enumerate(argv):
        flag, equals, value = argument.partition("=") if argument.startswith("-") else ("", "", argument)
        if equals and SECRET_FLAG.match(flag):
            said.append(f"{flag}={HIDDEN}")
        elif position and SECRET_FLAG.match(argv[position - 1]) and not argument.startswith("-"):
            said.append(HIDDEN)
        else:
            said.append(URL_PASSWORD.sub(rf"\g<1>{HIDDEN}@", argument))
    return said
