"""`train --pseudo-labels GROUP`: a fold group is a source as a run is - the test images its calibrated blend (what
`predict GROUP` submits) labels confidently - and the same refusals hold; `train --folds` refuses pseudo-labels."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import FOLD_ARGS, assert_one_line_error, run_cli

from kaggle_kit.competitions.metrics import softmax
from kaggle_kit.records.group_folder import FoldGroup
from kaggle_kit.workflows.cross_validation import group_logits

ONE_EPOCH = [*FOLD_ARGS, "--epochs", "1", "--no-analyze"]  # the last --epochs wins


@pytest.fixture(scope="module")
def group_probabilities(cifar_group, tiny_cifar):
    """(ids, probabilities): the group's averaged test logits at the temperature stored in oof_predictions.npz."""
    group_dir, _ = cifar_group
    blended = group_logits(group_dir, tiny_cifar, device="cpu")
    with np.load(group_dir / "oof_predictions.npz") as oof:
        temperature = float(oof["temperature"])
    return blended.test_ids, softmax(blended.test_logits, temperature)


def test_group_pseudo_labels_are_its_confident_test_images_with_its_argmax(
    cifar_group, tiny_cifar, group_probabilities, tmp_path
):
    group_dir, _ = cifar_group
    ids, probabilities = group_probabilities
    confidences = np.unique(probabilities.max(1))
    assert len(confidences) > 2, confidences
    threshold = float(confidences[len(confidences) // 2])  # some pass, some do not
    out = tmp_path / "run"
    result = run_cli(
        "train", "cifar10", "--data-dir", tiny_cifar, "--out", out, *ONE_EPOCH,
        "--pseudo-labels", group_dir, "--pseudo-threshold", repr(threshold),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    chosen = pd.read_csv(out / "pseudo_labels.csv", dtype=str)
    config = json.loads((out / "config.json").read_text())
    confident = probabilities.max(1) >= threshold
    assert 0 < len(chosen) < len(ids)
    assert chosen["id"].tolist() == np.asarray(ids)[confident].tolist()
    assert chosen["label"].tolist() == np.asarray(config["classes"])[probabilities[confident].argmax(1)].tolist()
    # the labels are what `predict GROUP` submits for those images
    submitted = tmp_path / "group.csv"
    assert run_cli("predict", group_dir, "--data-dir", tiny_cifar, "--out", submitted).returncode == 0
    by_id = pd.read_csv(submitted, dtype=str).set_index("id")["label"]
    assert by_id.loc[chosen["id"]].tolist() == chosen["label"].tolist()
    record = config["pseudo_labels"]
    plan = FoldGroup(group_dir).plan()
    assert record["source"] == str(group_dir.resolve()) and record["source_kind"] == "group"
    assert record["source_fingerprint"] == plan["fingerprint"] and record["source_folds"] == 3
    assert record["source_temperature"] == pytest.approx(FoldGroup(group_dir).oof().temperature)
    assert record["threshold"] == threshold and record["count"] == len(chosen) and record["test_images"] == len(ids)
    assert record["per_class"] == {c: int((chosen["label"] == c).sum()) for c in config["classes"]}


def test_a_group_of_another_competition_is_refused(cifar_group, sample_zips, tmp_path):
    out = tmp_path / "dog"
    result = run_cli(
        "train", "dog_breed", "--data-dir", sample_zips["dog_breed"], "--out", out, "--pseudo-labels", cifar_group[0]
    )
    assert_one_line_error(result, "--pseudo-labels", "cifar10", "dog_breed")
    assert not out.exists()


def test_a_group_on_other_data_and_an_unfinished_group_are_refused(cifar_group, tiny_cifar, sample_zips, tmp_path):
    result = run_cli(
        "train", "cifar10", "--data-dir", sample_zips["cifar10"], *ONE_EPOCH, "--pseudo-labels", cifar_group[0]
    )
    assert_one_line_error(result, "--pseudo-labels", "other data", "fingerprint")
    unfinished = shutil.copytree(cifar_group[0], tmp_path / "unfinished")
    history = unfinished / "fold-2" / "history.csv"
    history.write_text("".join(history.read_text().splitlines(keepends=True)[:2]))  # 1 of its 2 epochs: unfinished
    out = tmp_path / "run"
    result = run_cli(
        "train", "cifar10", "--data-dir", tiny_cifar, "--out", out, *ONE_EPOCH, "--pseudo-labels", unfinished
    )
    assert_one_line_error(result, "fold(s) 2 of 3", "not finished", "--resume")
    assert not out.exists()


def test_fold_groups_do_not_train_with_pseudo_labels(cifar_group, tiny_cifar, tmp_path):
    out = tmp_path / "group"
    result = run_cli(
        "train", "cifar10", "--data-dir", tiny_cifar, "--folds", "2", "--out", out, "--pseudo-labels", cifar_group[0]
    )
    assert_one_line_error(result, "--pseudo-labels", "fold groups", "OOF")
    assert not out.exists()
    result = run_cli("train", "--resume", cifar_group[0], "--pseudo-labels", cifar_group[0])
    assert_one_line_error(result, "--pseudo-labels", "fold groups")
