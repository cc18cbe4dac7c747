"""The notebook example runs as printed: README's block after `<!-- notebook-example -->` (once the README holds
it), else the one in docs/notebook.md, in a fresh interpreter in an empty folder, through the Python API only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- notebook-example -->"


def example_block() -> tuple[Path, str]:
    """The ```python block that follows the marker: README's when it has one, else docs/notebook.md's."""
    for source in (REPO / "README.md", REPO / "docs" / "notebook.md"):
        text = source.read_text() if source.is_file() else ""
        if MARKER in text:
            found = re.search(r"```python\n(.*?)```", text.split(MARKER, 1)[1], re.S)
            assert found, f"{source}: no ```python block after {MARKER}"
            return source, found.group(1)
    raise AssertionError(f"neither README.md nor docs/notebook.md holds {MARKER}")


def test_the_notebook_example_runs_end_to_end_through_the_api(tmp_path):
    source, code = example_block()
    # the API alone: no command line, no shell, no hidden helper
    for forbidden in ("kaggle_kit.cli", "subprocess", "os.system", "!kaggle-kit", "import helpers"):
        assert forbidden not in code, f"{source}'s example uses {forbidden}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "KAGGLE_KIT_RUNS_DIR": str(tmp_path / "runs"),
        "KAGGLE_KIT_SUBMISSIONS_DIR": str(tmp_path / "submissions"),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{source}'s example failed:\n{done.stderr[-3000:]}"
    runs = [p.parent for p in (tmp_path / "runs").rglob("config.json")]
    assert len(runs) == 1, runs  # the run the example trained, in the folder it ran in
    submissions = list((tmp_path / "submissions").rglob("*.csv"))
    assert [p.stem for p in submissions] == [runs[0].name]
    assert str(runs[0].relative_to(tmp_path)) in done.stdout  # kk.runs() listed it
    assert "val_metric" in done.stdout and "test accuracy:" in done.stdout
