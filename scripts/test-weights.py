"""Write tests/file_seconds.json, each test file's seconds in one run, from that run's JUnit XML:

    .venv/bin/python -m pytest -n 3 --dist loadfile --junitxml=/tmp/junit.xml
    .venv/bin/python scripts/test-weights.py /tmp/junit.xml

CI hands whole files to its workers (--dist loadfile). tests/conftest.py starts the longest files first, so that
no worker is left with a long file at the end while the others sit idle (longest-first is the classic schedule
for jobs of known length on parallel machines). Only the order matters: seconds from a loaded machine serve as
well as idle ones, and a file missing from the table runs after those in it.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "tests" / "file_seconds.json"


def main(junit: str) -> None:
    seconds: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        seconds[path] += float(case.get("time", 0))
    table = {path: round(total, 1) for path, total in seconds.most_common()}
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"{TABLE}: {len(table)} files, {sum(table.values()):.0f} s in all")


if __name__ == "__main__":
    main(sys.argv[1])
