"""Shared test setup: quiet, single-threaded torch, and generated competition samples."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# progress lines are on by default: off for the commands tests start themselves, as run_cli keeps them off
os.environ.setdefault("KAGGLE_KIT_PROGRESS", "0")
import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import CIFAR_RUN_ARGS, FOLD_ARGS, run_cli

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample

FILE_SECONDS = json.loads((Path(__file__).parent / "file_seconds.json").read_text())


def pytest_collection_modifyitems(config, items):
    """The longest test files first (tests/file_seconds.json, written by scripts/test-weights.py): CI's workers
    take whole files in this order (`--dist loadfile --no-loadscope-reorder`), so none is left with a long file
    at the end. The order of the tests inside a file is kept."""
    root = Path(config.rootpath)
    items.sort(key=lambda item: -FILE_SECONDS.get(str(Path(item.path).relative_to(root)), 0.0))


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
    # CIFAR-10 at 30 images a class, not the sample's default 60: a CPU learns it as well, in half the time
    sizes = {"cifar10": 300, "dog_breed": None}
    return {name: write_sample(resolve(name), root / name, n_train=n).parent for name, n in sizes.items()}


@pytest.fixture(scope="session")
def sample_zips(pristine_samples, tmp_path_factory):
    """Shared copies of the generated downloads: tests may train on them (caches are reused across tests)."""
    root = tmp_path_factory.mktemp("samples")
    return {name: Path(shutil.copytree(folder, root / name)) for name, folder in pristine_samples.items()}


@pytest.fixture(scope="session")
def cifar_run(sample_zips, tmp_path_factory):
    """(run folder, the train command's result): read-only; a test that predicts, resumes or edits copies it
    (`shutil.copytree`) first. The data is sample_zips["cifar10"]."""
    out = tmp_path_factory.mktemp("shared-runs") / "cifar"
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        sample_zips["cifar10"],
        "--out",
        out,
        *CIFAR_RUN_ARGS,
        env={"KAGGLE_KIT_PROGRESS": "1"},
    )
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.fixture
def fresh_sample(pristine_samples, tmp_path):
    """A private copy of a competition's untouched download folder, to change or break."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(pristine_samples[name], target)
        return target

    return copy


class CliResult(subprocess.CompletedProcess):
    """What `run_cli` returns: a CompletedProcess's returncode, stdout and stderr, from a call in this process."""


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory):
    """A CIFAR-10 download with 9 training images per class and 30 test images, answers.csv beside it."""
    return write_sample(resolve("cifar10"), tmp_path_factory.mktemp("tiny-cifar"), n_train=90, n_test=30).parent


@pytest.fixture(scope="session")
def cifar_group(tiny_cifar, tmp_path_factory):
    """(group folder, the train command's result): `train cifar10 --folds 3` on tiny_cifar."""
    out = tmp_path_factory.mktemp("shared-groups") / "group"
    result = run_cli("train", "cifar10", "--data-dir", tiny_cifar, "--folds", "3", "--out", out, *FOLD_ARGS)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster of 2 CPUs, started once (Ray takes seconds to start); `--ray auto` in this process
    joins it."""
    import ray

    # "local": a cluster of its own, even where `ray start` left one on this machine (None would join that)
    # worker_niceness 0: Ray's default 15 starves the jobs behind the other test workers' CPU-bound tests
    system = {"worker_niceness": 0}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=system)
    yield ray
    ray.shutdown()
