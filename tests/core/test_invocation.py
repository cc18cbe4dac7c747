"""The command line a run records (config.json's `command`, a study's) never holds a credential passed as a flag:
`invocation.command()` is the one place every recording command (train, tune's trials, experiment) takes it from."""

from __future__ import annotations

import pytest

from kaggle_kit.core import invocation

CASES = [
    (["--token", "abc123"], ["--token", "***"]),
    (["--api-key=abc123"], ["--api-key=***"]),
    (["--password", "hunter2", "--epochs", "2"], ["--password", "***", "--epochs", "2"]),
    (["--kaggle-secret", "s"], ["--kaggle-secret", "***"]),
    (["--storage", "postgresql://kit:hunter2@db:5432/optuna"], ["--storage", "postgresql://kit:***@db:5432/optuna"]),
    (["--track=http://me:hunter2@mlflow:5000"], ["--track=http://me:***@mlflow:5000"]),
    (["--keyword", "plain", "--out", "runs/a"], ["--keyword", "plain", "--out", "runs/a"]),  # no secret: unchanged
    (["--token", "--epochs", "2"], ["--token", "--epochs", "2"]),  # a flag after a flag is no value
]


@pytest.mark.parametrize("given, recorded", CASES)
def test_a_credential_on_the_command_line_is_recorded_as_stars(given, recorded):
    before = invocation.set_arguments(["train", "cifar10", *given])
    try:
        assert invocation.command() == ["kaggle-kit", "train", "cifar10", *recorded]
        assert invocation.arguments() == ["train", "cifar10", *given]  # what a launched worker runs is unchanged
    finally:
        invocation.set_arguments(before)
