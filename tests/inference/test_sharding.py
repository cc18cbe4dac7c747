"""Prediction split across devices: the real split-and-merge path, run on two (and three) CPU "devices", gives the
single device's submission byte for byte and its probabilities bitwise (fp32 on a CPU: every shard's batches are
the batches one device would have run, so nothing is computed differently)."""

from __future__ import annotations

import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.inference.engines import cpu_batch_size, load_for_inference
from kaggle_kit.inference.loading import open_run_layout
from kaggle_kit.inference.predict import calibrated_test_probabilities, predict_run
from kaggle_kit.inference.sharding import contiguous_shards, inference_devices, replicate
from kaggle_kit.training import train

TINY = dict(epochs=1, batch_size=32, arch="test_resnet", workers=0, device="cpu")


@pytest.fixture(scope="module")
def dog(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharding")
    write_sample(resolve("dog_breed"), root / "dog-data", n_train=120, n_test=30)
    train(
        "dog_breed", root / "dog-data", out=root / "dog-run", img_size=32, eval_resize=40, pretrained=False,
        freeze=False, unfreeze_after=None, tta="on", **TINY,
    )  # fmt: skip
    return types.SimpleNamespace(root=root, run=root / "dog-run")


def test_shards_are_contiguous_whole_batches_covering_every_image_once():
    assert contiguous_shards(30, 2, 7) == [(0, 21), (21, 30)]  # 5 batches: 3 and 2
    assert contiguous_shards(30, 3, 7) == [(0, 14), (14, 28), (28, 30)]
    assert contiguous_shards(10, 4, 8) == [(0, 8), (8, 10)]  # two batches: two devices idle
    assert contiguous_shards(0, 2, 8) == []
    for images, parts, batch in ((1000, 2, 64), (257, 3, 16), (5, 2, 1)):
        shards = contiguous_shards(images, parts, batch)
        assert shards[0][0] == 0 and shards[-1][1] == images
        assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))
        assert all(start % batch == 0 for start, _ in shards)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_two_cpu_shards_write_the_single_devices_file_byte_for_byte(dog, tmp_path, engine):
    run = Path(shutil.copytree(dog.run, tmp_path / "run"))
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    single = run_cli("predict", run, "--device", "cpu", "--engine", engine, "--batch-size", "7", "--out", one)
    assert single.returncode == 0, single.stderr
    split = run_cli(
        "predict", run, "--devices", "cpu,cpu", "--engine", engine, "--batch-size", "7", "--out", two
    )  # fmt: skip
    assert split.returncode == 0, split.stderr
    assert f"on cpu,cpu, {engine})" in split.stdout and f"on cpu, {engine})" in single.stdout  # the devices are said
    assert one.read_bytes() == two.read_bytes()
    assert "batch 7 (--batch-size)" in single.stdout and "batch 7 (--batch-size)" in split.stdout
    assert len(one.read_text().splitlines()) == 31  # the header and every test image


def test_split_probabilities_equal_the_single_devices_bitwise(dog):
    loaded, choice = load_for_inference(dog.run, "best", "cpu", "torch")
    layout = open_run_layout(loaded, None)
    single = calibrated_test_probabilities(loaded, layout, True, batch_size=4)
    for devices in (["cpu", "cpu"], "cpu,cpu,cpu"):
        replicas = replicate(loaded, choice, inference_devices(devices))
        split = calibrated_test_probabilities(loaded, layout, True, batch_size=4, replicas=replicas)
        assert split.ids == single.ids and len(split.views) == len(single.views) > 1
        assert np.array_equal(split.probabilities, single.probabilities)


def test_without_batch_size_a_cpu_batch_comes_from_the_cores_and_is_said(dog, tmp_path):
    import torch

    done = predict_run(dog.run, out=tmp_path / "p.csv", device="cpu")
    cores = torch.get_num_threads()
    assert done.batch_size == cpu_batch_size(cores) and done.batch_reason.startswith(f"{cores} CPU core")
    assert done.device == "cpu" and done.rows == 30


def test_a_bad_device_list_is_a_one_line_error(dog, tmp_path):
    out = tmp_path / "x.csv"
    assert_one_line_error(run_cli("predict", dog.run, "--devices", "cpu,tpu", "--out", out), "tpu", "cpu, cuda")
    assert_one_line_error(run_cli("predict", dog.run, "--devices", "cpu,,cpu", "--out", out), "--devices", "cpu,cpu")
    assert not out.exists()


def test_the_runtime_estimate_runs_through_the_split(dog, tmp_path):
    run = Path(shutil.copytree(dog.run, tmp_path / "run"))
    found = run_cli("predict", run, "--estimate", "5000", "--devices", "cpu,cpu", "--batch-size", "8", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert "(cpu,cpu: the test set split across 2 devices)" in found.stdout and "for 5,000 test images" in found.stdout
    start_up = re.search(r"and: start-up ([0-9.]+) s .*, decoding ([0-9.]+) ms per test image", found.stdout)
    assert start_up and float(start_up.group(1)) > 0 and float(start_up.group(2)) > 0  # what the notebook pays too
    assert not (tmp_path / "submissions").exists()  # an estimate writes no submission
