"""`kaggle-kit tune --storage postgresql://...` against a real PostgreSQL server (scripts/start-postgres.sh, which
.ci/run starts; its URL in $KAGGLE_KIT_TEST_POSTGRES): two workers end with exactly the capped number of trials,
a worker SIGKILLed mid-trial leaves a trial that the heartbeat marks failed and the next worker retries, and the
database password is never printed nor written to the study folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import optuna
import pytest
from helpers import KAGGLE_KIT, REPO, TINY_CPU_ARGS
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from kaggle_kit.study.tune_storage import redact

ENV = "KAGGLE_KIT_TEST_POSTGRES"
SPACE = 'pruner = "none"\n[params.lr]\ndistribution = "log-uniform"\nlow = 0.01\nhigh = 0.1\n'


@pytest.fixture
def postgres_url():
    url = os.environ.get(ENV)
    if not url:
        message = f"${ENV} is not set: start a server with `export {ENV}=$(bash scripts/start-postgres.sh)`"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI starts the server: its absence is a broken CI, not a test to skip
        pytest.skip(message)
    return url


def worker(tiny_cifar, tmp_path, study: str, url: str, *extra: str) -> subprocess.Popen:
    space = tmp_path / "lr.toml"
    space.write_text(SPACE)
    command = [*KAGGLE_KIT, "tune", "cifar10", "--data-dir", str(tiny_cifar), "--space", str(space)]
    command += ["--study", study, "--storage", url, *extra, *map(str, TINY_CPU_ARGS), "--tta", "off"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAGGLE_KIT_RUNS_DIR": str(tmp_path / "runs")}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out + err


def password_never_leaks(url: str, text: str, study_dir) -> None:
    secret = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert secret and secret not in text
    assert redact(url) in text  # what is said instead
    for path in study_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_two_workers_against_postgresql_end_with_exactly_the_cap(postgres_url, tiny_cifar, tmp_path):
    study = f"two-{uuid.uuid4().hex[:8]}"
    extra = ("--trials", "3", "--epochs", "1")
    workers = [worker(tiny_cifar, tmp_path, study, postgres_url, *extra) for _ in range(2)]
    said = "".join(finish(process) for process in workers)
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 3, [(t.number, t.state, t.user_attrs) for t in trials]
    assert all(t.user_attrs.get("surplus") for t in trials if t not in done)
    study_dir = tmp_path / "runs" / "cifar10" / f"tune-{study}"
    folders = sorted(p.name for p in study_dir.glob("trial-*") if (p / "config.json").is_file())
    assert folders == sorted(f"trial-{t.number:03d}" for t in done)
    assert json.loads((study_dir / "study.json").read_text())["storage"] == redact(postgres_url)
    password_never_leaks(postgres_url, said, study_dir)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # retried_trial_number
def test_a_killed_worker_s_trial_fails_by_heartbeat_and_is_retried(postgres_url, tiny_cifar, tmp_path):
    study = f"kill-{uuid.uuid4().hex[:8]}"
    extra = ("--trials", "2", "--epochs", "2", "--heartbeat", "1")
    first = worker(tiny_cifar, tmp_path, study, postgres_url, *extra)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        try:
            running = optuna.load_study(study_name=study, storage=postgres_url).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # the study is not created yet
            running = []
        if running:
            break
        time.sleep(0.5)
    assert first.poll() is None and running, "the first worker never started a trial"
    # killed only once the trial has trained an epoch: Optuna fails by heartbeat only a trial that has sent one
    saved = tmp_path / "runs" / "cifar10" / f"tune-{study}" / "trial-000" / "last.pt"
    while time.monotonic() < deadline and first.poll() is None and not saved.is_file():
        time.sleep(0.1)
    assert first.poll() is None and saved.is_file(), "the first worker never finished an epoch"
    first.send_signal(signal.SIGKILL)  # no handler runs: the trial stays RUNNING, its heartbeat stops
    first.communicate()
    time.sleep(3)  # past the grace period (2 x the heartbeat)
    finish(worker(tiny_cifar, tmp_path, study, postgres_url, *extra))
    trials = optuna.load_study(study_name=study, storage=postgres_url).trials
    killed = trials[0]
    assert killed.state == TrialState.FAIL
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2, [(t.number, t.state) for t in trials]
    retries = [t for t in complete if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    record = json.loads(
        (tmp_path / "runs" / "cifar10" / f"tune-{study}" / f"trial-{retries[0].number:03d}" / "trial.json").read_text()
    )
    assert record["retry_of"] == killed.number and record["state"] == "complete"
