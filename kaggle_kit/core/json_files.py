"""Reading a JSON object a program wrote: a settings file, a stamp, a record beside a run or an experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import KitError


def read_json_object(path: Path | str, damaged: str | None = None) -> dict[str, Any]:
    """The JSON object in `path`; {} when there is no such file. A file that is unreadable or holds no object is
    {} too (a stale stamp, an optional record), unless `damaged` says what the user should do about it: then it is
    a one-line KitError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        if damaged is None:
            return {}
        raise KitError(f"{path}: unreadable ({error}); {damaged}") from None
    if isinstance(data, dict):
        return data
    if damaged is None:
        return {}
    raise KitError(f"{path}: not a JSON object; {damaged}")
