"""Error analysis from a run's stored predictions: pictures of a 10-class and a 120-class run, confusion counts
against a direct count, the ROC of two classes, and the command. Runs are tiny (test_resnet, one epoch)."""

import collections
import csv
import types

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, run_cli
from PIL import Image

from kaggle_kit.cli import main
from kaggle_kit.competitions.metrics import ACCURACY
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.inference.analysis import analyze, analyze_run, figure_size
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.training import train

torch.set_num_threads(1)

TINY = dict(epochs=1, batch_size=64, arch="test_resnet", workers=0, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    write_sample(resolve("cifar10"), root / "cifar-data", n_train=200, n_test=20)
    write_sample(resolve("dog_breed"), root / "dog-data", n_train=480, n_test=20)
    train("cifar10", root / "cifar-data", out=root / "cifar-run", img_size=32, **TINY)
    train(
        "dog_breed",
        root / "dog-data",
        out=root / "dog-run",
        img_size=64,
        eval_resize=72,
        pretrained=False,
        freeze=False,
        unfreeze_after=None,
        **TINY,
    )
    return types.SimpleNamespace(cifar=root / "cifar-run", dog=root / "dog-run", cifar_data=root / "cifar-data")


def assert_png(path, size):
    assert path.is_file() and path.stat().st_size > 5000, path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == size, (path, image.size, size)
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10, f"{path} is blank"


@pytest.mark.parametrize(
    "which, classes, direction", [("cifar", 10, "higher is better"), ("dog", 120, "lower is better")]
)
def test_pictures_are_written_at_their_size(runs, tmp_path, which, classes, direction):
    result = analyze_run(getattr(runs, which), tmp_path / "out")
    for name in ("confusion", "high_loss", "reliability"):
        assert_png(tmp_path / "out" / f"{name}.png", figure_size(name))
    assert_png(tmp_path / "out" / "per_class.png", figure_size("per_class", classes))
    assert not (tmp_path / "out" / "roc.png").exists()  # not a binary task
    markdown = (tmp_path / "out" / "analysis.md").read_text()
    assert direction in markdown and "![highest loss](high_loss.png)" in markdown
    with open(tmp_path / "out" / "per_class.csv") as handle:
        assert len(list(csv.DictReader(handle))) == classes
    assert result.notes == []


def test_confusion_counts_equal_a_direct_count(runs, tmp_path):
    analyze_run(runs.dog, tmp_path)
    ids, labels, logits = RunDir(runs.dog).val_predictions()
    classes = RunDir(runs.dog).config()["classes"]
    direct = collections.Counter((classes[t], classes[int(np.argmax(row))]) for t, row in zip(labels, logits))
    with open(tmp_path / "confusion.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][1:] == classes and [row[0] for row in rows[1:]] == classes
    written = {(rows[0][c], row[0]): int(v) for row in rows[1:] for c, v in enumerate(row[1:], 1)}
    assert {(t, p): n for (p, t), n in written.items() if n} == dict(direct)
    with open(tmp_path / "confused_pairs.csv") as handle:
        pairs = list(csv.DictReader(handle))
    mistakes = {k: n for k, n in direct.items() if k[0] != k[1]}
    assert pairs and int(pairs[0]["count"]) == max(mistakes.values())
    assert all(mistakes[(p["true"], p["predicted"])] == int(p["count"]) for p in pairs)


def test_two_classes_get_a_roc_curve_with_the_reference_area(tmp_path):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    logits = np.stack([np.zeros(300), labels * 1.5 + rng.normal(0, 1, 300)], axis=1)
    ids = [f"img{n}" for n in range(300)]
    analyze(ids, labels, logits, ["cat", "dog"], ACCURACY, tmp_path, image=lambda i: np.full((8, 8, 3), 90, np.uint8))
    assert_png(tmp_path / "roc.png", figure_size("roc"))
    expected = roc_auc_score(labels, logits[:, 1])
    assert f"Area under the curve {expected:.4f}" in (tmp_path / "analysis.md").read_text()


def test_analyze_command_and_its_errors(runs, tmp_path, capsys):
    try:
        main(["analyze", str(runs.cifar), "--out", str(tmp_path / "pictures")])
    finally:
        out = capsys.readouterr().out
    assert (tmp_path / "pictures" / "analysis.md").is_file() and "analysis.md" in out
    missing = run_cli("analyze", tmp_path / "nothing-here")
    assert_one_line_error(missing, "nothing-here", "kaggle-kit train")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text(RunDir(runs.cifar).file("config.json").read_text())
    assert_one_line_error(run_cli("analyze", tmp_path / "bare"), "val_predictions.npz")


def test_the_confusion_of_a_thresholded_qwk_run_counts_the_submitted_grades(tmp_path):
    from kaggle_kit.competitions.metrics import QWK, grades_from_thresholds, softmax

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 200)
    logits = rng.normal(size=(200, 5)) - np.abs(np.subtract.outer(labels, np.arange(5)))
    thresholds = [0.9, 1.6, 2.4, 3.1]
    grades = grades_from_thresholds(softmax(logits), thresholds)
    assert (grades != logits.argmax(1)).any()  # the submitted grades are not the argmax
    ids = [f"img{n}" for n in range(200)]
    result = analyze(ids, labels, logits, list("01234"), QWK, tmp_path, thresholds=thresholds)
    expected = np.zeros((5, 5), np.int64)
    np.add.at(expected, (labels, grades), 1)
    np.testing.assert_array_equal(result.confusion, expected)
