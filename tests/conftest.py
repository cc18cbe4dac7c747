"""Shared test setup: quiet, single-threaded torch, and generated competition samples."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kaggle_kit.competition import resolve
from kaggle_kit.sample import write_sample

REPO = Path(__file__).resolve().parents[1]
KAGGLE_KIT = [sys.executable, "-m", "kaggle_kit"]


@pytest.fixture(autouse=True)
def signal_handlers_left_as_found():
    """A test that calls kaggle-kit in this process must leave Ctrl-C and SIGTERM handling as it found it: every
    process started afterwards inherits an ignored signal, and a later Ctrl-C test would be deaf to it."""
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.getsignal(number) for number in signals}
    yield
    changed = {signal.Signals(n).name: signal.getsignal(n) for n in signals if signal.getsignal(n) != before[n]}
    for number, handler in before.items():
        signal.signal(number, handler)
    assert not changed, f"this test left signal handlers changed: {changed}"


@pytest.fixture(autouse=True, scope="session")
def submissions_dir_outside_the_repo(tmp_path_factory):
    """predict records every file it writes in <submissions dir>/written.jsonl, beside the ledger: tests that
    predict in this process, or start kaggle-kit with this environment, must not write the repository's own."""
    if not os.environ.get("KAGGLE_KIT_SUBMISSIONS_DIR"):
        os.environ["KAGGLE_KIT_SUBMISSIONS_DIR"] = str(tmp_path_factory.mktemp("submissions-dir"))
    yield


@pytest.fixture(scope="session")
def pristine_samples(tmp_path_factory):
    """Generated downloads no test ever opens in place (opening unpacks into the folder)."""
    root = tmp_path_factory.mktemp("pristine")
    return {name: write_sample(resolve(name), root / name).parent for name in ("cifar10", "dog_breed")}


@pytest.fixture(scope="session")
def sample_zips(pristine_samples, tmp_path_factory):
    """Shared copies of the generated downloads: tests may train on them (caches are reused across tests)."""
    root = tmp_path_factory.mktemp("samples")
    return {name: Path(shutil.copytree(folder, root / name)) for name, folder in pristine_samples.items()}


@pytest.fixture
def fresh_sample(pristine_samples, tmp_path):
    """A private copy of a competition's untouched download folder, to change or break."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(pristine_samples[name], target)
        return target

    return copy


def ctrl_c_reaches_it() -> None:
    """`preexec_fn` of a child the test will Ctrl-C: a runner started in the background by a shell without job
    control ignores SIGINT, and its children inherit that (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The real entry point in a child process: exit code, stdout and stderr as a user sees them."""
    import os

    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*KAGGLE_KIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
