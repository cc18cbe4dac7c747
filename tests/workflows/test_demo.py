"""The README's main-job command: the whole loop on a generated sample through the real CLI."""

import pandas as pd
from helpers import run_cli


def test_demo_runs_the_whole_loop(tmp_path):
    result = run_cli("demo", "--out", tmp_path, "--epochs", "1", "--arch", "test_resnet")
    assert result.returncode == 0, result.stderr
    assert "test score:   accuracy" in result.stdout
    submission = next((tmp_path / "submissions" / "cifar10").glob("*.csv"))
    sample = pd.read_csv(tmp_path / "data" / "cifar-10" / "sampleSubmission.csv", dtype=str)
    written = pd.read_csv(submission, dtype=str)
    assert list(written.columns) == ["id", "label"] and written["id"].tolist() == sample["id"].tolist()
