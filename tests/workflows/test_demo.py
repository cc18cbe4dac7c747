"""The README's main-job command: the whole loop on a generated sample through the real CLI."""

import re

import pandas as pd
from helpers import run_cli


def test_demo_runs_the_whole_loop(tmp_path):
    """Progress as a user sees it by default (stdout no terminal: a notebook's `!kaggle-kit demo`): each step said
    as it starts, a line per epoch with its rate and ETA; the end points to `init` for one's own competition."""
    result = run_cli(
        "demo", "--out", tmp_path, "--epochs", "1", "--arch", "test_resnet", env={"KAGGLE_KIT_PROGRESS": None}
    )
    assert result.returncode == 0, result.stderr
    assert "test score:   accuracy" in result.stdout and "hidden answers" in result.stdout
    # the validation figure with its 95% interval and n, on the epoch line and in the summary
    assert re.search(r"^validation:   accuracy [\d.]+ \[[\d.]+, [\d.]+\] n=\d+ - higher", result.stdout, re.M), (
        result.stdout
    )
    assert re.search(r"^epoch 1: .* accuracy [\d.]+ \[[\d.]+, [\d.]+\] n=\d+ \|", result.stderr, re.M), result.stderr
    assert "kaggle-kit init <slug>" in result.stdout
    steps = [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("demo ")]
    assert steps == ["demo 1/4", "demo 2/4", "demo 3/4", "demo 4/4"], result.stderr
    assert re.search(r"^epoch 1: .* img/s \| 0 epoch\(s\) left, eta 00:00$", result.stderr, re.M), result.stderr
    submission = next((tmp_path / "submissions" / "cifar10").glob("*.csv"))
    sample = pd.read_csv(tmp_path / "data" / "cifar-10" / "sampleSubmission.csv", dtype=str)
    written = pd.read_csv(submission, dtype=str)
    assert list(written.columns) == ["id", "label"] and written["id"].tolist() == sample["id"].tolist()
