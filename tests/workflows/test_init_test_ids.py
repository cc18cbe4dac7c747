"""A code competition's download, whose sample submission does not list the test images: `init` takes the test
ids from test.csv, and train, predict and validate write and check one row per test image.

The download is a generated CIFAR-10 one (images in train.7z and test.7z) reshaped as Kaggle ships a code
competition: test.csv lists the test images by id, and sampleSubmission.csv holds three placeholder rows naming
no image (the rerun on Kaggle's hidden test set gets the full one). Ids are given with and without the extension.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import TINY_CPU_ARGS, assert_one_line_error, run_cli

PLACEHOLDERS = ["900001", "900002", "900003"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The generated CIFAR-10 download, unpacked (its ids carry no extension)."""
    root = tmp_path_factory.mktemp("code-competition")
    result = run_cli("sample", "cifar10", root / "zip", "--n-train", "60", "--n-test", "12")
    assert result.returncode == 0, result.stderr
    folder = root / "unpacked"
    with zipfile.ZipFile(next((root / "zip").glob("*.zip"))) as zf:
        zf.extractall(folder)
    return folder


def _code_competition(generated: Path, folder: Path, extension: str) -> list[str]:
    """A copy of the download with test.csv listing the test images and a sample of three placeholder rows, every
    id (trainLabels.csv's too) `extension`-suffixed; returns the test ids as test.csv lists them."""
    import shutil

    shutil.copytree(generated, folder)
    sample = pd.read_csv(folder / "sampleSubmission.csv", dtype=str)
    ids = [f"{i}{extension}" for i in sample["id"]]
    pd.DataFrame({"id": ids}).to_csv(folder / "test.csv", index=False)
    labels = pd.read_csv(folder / "trainLabels.csv", dtype=str)
    labels["id"] = labels["id"] + extension
    labels.to_csv(folder / "trainLabels.csv", index=False)
    few = sample.head(3).copy()
    few["id"] = PLACEHOLDERS
    few.to_csv(folder / "sampleSubmission.csv", index=False)
    return ids


@pytest.mark.parametrize("extension", ["", ".png"])
def test_init_takes_test_ids_from_test_csv_when_the_sample_lists_none(generated, tmp_path, extension):
    folder = tmp_path / "download"
    ids = _code_competition(generated, folder, extension)
    out = tmp_path / "code_cifar.toml"
    result = run_cli("init", "cifar-10", "--data-dir", folder, "--name", "code_cifar", "--metric", "accuracy",
                     "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "in test.csv order" in result.stdout and "one row per test.csv id" in result.stdout, result.stdout
    assert 'test_file = "test.csv"' in out.read_text()
    assert ("id_has_extension = true" in out.read_text()) == bool(extension)
    if extension:  # one run through train and predict is enough: ids with or without it open the same way
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        (tmp_path / "config" / "kaggle-kit" / "competitions").mkdir(parents=True)
        out.rename(tmp_path / "config" / "kaggle-kit" / "competitions" / "code_cifar.toml")
        from kaggle_kit.competitions.registry import rediscover

        rediscover()
        try:
            run, submission = tmp_path / "run", tmp_path / "submission.csv"
            trained = run_cli("train", "code_cifar", "--data-dir", folder, "--out", run, "--epochs", "1",
                              "--tta", "off", "--no-analyze", *TINY_CPU_ARGS)  # fmt: skip
            assert trained.returncode == 0, trained.stderr
            predicted = run_cli("predict", run, "--data-dir", folder, "--out", submission)
            assert predicted.returncode == 0, predicted.stderr
            written = pd.read_csv(submission, dtype=str)
            assert written["id"].tolist() == ids  # one row per test image, in test.csv's order
            assert list(written.columns) == list(pd.read_csv(folder / "sampleSubmission.csv").columns)
            checked = run_cli("validate", submission, "--competition", "code_cifar", "--data-dir", folder)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            # `sample` of the declaration writes the test.csv it names
            generated_again = run_cli("sample", "code_cifar", tmp_path / "again", "--n-train", "20", "--n-test", "4")
            assert generated_again.returncode == 0, generated_again.stderr
            with zipfile.ZipFile(next((tmp_path / "again").glob("*.zip"))) as zf:
                assert "test.csv" in zf.namelist()
        finally:
            rediscover()


def test_a_sample_naming_no_image_without_a_test_csv_names_the_fix(generated, tmp_path):
    folder = tmp_path / "download"
    _code_competition(generated, folder, "")
    (folder / "test.csv").unlink()
    result = run_cli("init", "cifar-10", "--data-dir", folder, "--name", "code_cifar", "--metric", "accuracy",
                     "--out", tmp_path / "x.toml")  # fmt: skip
    assert_one_line_error(
        result, "no image for the sample's first id", "no test CSV lists the test images", "--test-dir"
    )
