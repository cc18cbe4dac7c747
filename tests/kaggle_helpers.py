"""Helpers for tests against the fake Kaggle (tests/kaggle_server.py): the CLI in a child with a clean
Kaggle environment, submissions and runs to submit, the ledger as written."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from fault_sweep import zygote
from helpers import assert_one_line_error as one_line_error
from kaggle_server import DEFAULT_KEY, DEFAULT_USERNAME

from kaggle_kit.competitions.metrics import log_loss, softmax
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.submissions.ledger import Ledger

DOG = resolve("dog_breed")
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def kit_env(tmp_path: Path, endpoint: str, **changes) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE") and k.lower() not in PROXY_VARIABLES}
    env.update(
        HOME=str(tmp_path / "home"),
        KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle-config"),
        KAGGLE_USERNAME=DEFAULT_USERNAME,
        KAGGLE_KEY=DEFAULT_KEY,
        KAGGLE_KIT_API_ENDPOINT=endpoint,
        KAGGLE_KIT_HTTP_TIMEOUT="10",
        KAGGLE_KIT_RETRY_BUDGET="4",  # passing faults are retried, briefly: a test waits seconds, not a minute
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        KAGGLE_KIT_PROGRESS="0",  # quiet as the other tests are, unless a test asks for the lines
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def kit(args: list[str], cwd: Path, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m kaggle_kit ARGS` in cwd with exactly env, forked from the test worker's zygote
    (tests/kit_zygote.py): the same entry point and a process of its own, without importing torch each time."""
    return zygote().launch(Path(cwd), env, args).wait(timeout, raise_on_timeout=True)


def assert_no_secret(proc: subprocess.CompletedProcess, *secrets: str) -> None:
    for secret in (DEFAULT_KEY, *secrets):
        assert secret not in proc.stdout + proc.stderr


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str, secrets: tuple[str, ...] = ()) -> str:
    """conftest's check with nothing else on stderr, and no secret anywhere in the output."""
    line = one_line_error(proc, *needles, alone=True)
    assert_no_secret(proc, *secrets)
    return line


def ledger_of(work: Path) -> Ledger:
    path = work / "submissions" / "ledger.jsonl"
    if path.exists():  # never a torn line: every line parses
        assert all(json.loads(line) for line in path.read_text().splitlines())
    return Ledger(path)


def sample_frame(bundle: Path) -> pd.DataFrame:
    with zipfile.ZipFile(bundle / DOG.archive_name) as zf:
        return pd.read_csv(io.BytesIO(zf.read(DOG.sample_file)), dtype=str)


def write_submission(work: Path, bundle: Path, run: str = "run-a", confidence: float = 0.6) -> Path:
    """A valid Dog Breed submission leaning towards the right breed, at submissions/dog_breed/<run>.csv."""
    sample = sample_frame(bundle)
    classes = list(sample.columns[1:])
    answers = pd.read_csv(bundle / "answers.csv", dtype=str).set_index("id")["breed"]
    probs = np.full((len(sample), len(classes)), (1 - confidence) / (len(classes) - 1))
    for row, image_id in enumerate(sample["id"]):
        probs[row, classes.index(answers.get(image_id, classes[0]))] = confidence
    frame = pd.DataFrame(probs, columns=classes)
    frame.insert(0, "id", sample["id"])
    path = work / "submissions" / "dog_breed" / f"{run}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.12f")
    return path


def write_run(work: Path, name: str = "run-a", temperature: float = 1.5) -> float:
    """A run folder with config.json and validation predictions; returns its validation log loss."""
    run = work / "runs" / name
    run.mkdir(parents=True)
    recipe = {
        "name": "best",
        "arch": "resnet34",
        "epochs": 10,
        "batch_size": 64,
        "lr": 0.01,
        "schedule": "cosine",
        "aug": "modern",
    }
    config = {"competition": "dog_breed", "recipe": recipe, "tta": True, "temperature": temperature}
    (run / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 120, size=30)
    logits = rng.normal(size=(30, 120)).astype(np.float32)
    logits[np.arange(30), labels] += 4
    np.savez(run / "val_predictions.npz", ids=np.array([f"{i:032x}" for i in range(30)]), labels=labels, logits=logits)
    return log_loss(labels, softmax(logits, temperature))
