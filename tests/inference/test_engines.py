"""Inference engines: ONNX Runtime gives torch's submission within 1e-4, the export is cached and checked,
`auto` measures once, failures fall back or say how to install; the autocast dtype follows the GPU's bf16 units."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_one_line_error, run_cli

from kaggle_kit.competitions.metrics import softmax
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.config.recipe import Recipe
from kaggle_kit.inference import engines
from kaggle_kit.inference.predict import run_logits
from kaggle_kit.training import train
from kaggle_kit.training.device import autocast_dtype

TINY = dict(epochs=1, batch_size=32, arch="test_resnet", workers=0, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    write_sample(resolve("cifar10"), root / "cifar-data", n_train=90, n_test=40)
    write_sample(resolve("dog_breed"), root / "dog-data", n_train=120, n_test=20)
    train("cifar10", root / "cifar-data", out=root / "cifar-run", img_size=32, **TINY)
    train(
        "dog_breed", root / "dog-data", out=root / "dog-run", img_size=48, eval_resize=56, pretrained=False,
        freeze=False, unfreeze_after=None, tta="on", **TINY,
    )  # fmt: skip
    return types.SimpleNamespace(root=root, cifar=root / "cifar-run", dog=root / "dog-run")


def copied(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def test_onnx_submission_of_dog_breed_is_torchs_within_1e4(runs, tmp_path):
    run = copied(runs.dog, tmp_path)
    files = {}
    for engine in ("torch", "onnx"):
        files[engine] = tmp_path / f"{engine}.csv"
        result = run_cli("predict", run, "--engine", engine, "--out", files[engine])
        assert result.returncode == 0, result.stderr
        assert f", {engine})" in result.stdout  # the engine that ran is said
    torch_frame, onnx_frame = (pd.read_csv(files[e]) for e in ("torch", "onnx"))
    assert list(torch_frame.columns) == list(onnx_frame.columns) and torch_frame["id"].equals(onnx_frame["id"])
    difference = np.abs(torch_frame.iloc[:, 1:].to_numpy() - onnx_frame.iloc[:, 1:].to_numpy()).max()
    assert 0 <= difference <= 1e-4
    exported = list((run / "onnx").glob("best-*-48px.onnx"))
    assert len(exported) == 1


def test_onnx_logits_of_cifar10_match_with_tta_and_the_labels_are_torchs(runs, tmp_path):
    run = copied(runs.cifar, tmp_path)
    both = {e: run_logits(run, held_out=True, test=True, engine=e) for e in ("torch", "onnx")}
    for part in ("val_logits", "test_logits"):
        torch_probs, onnx_probs = (softmax(getattr(both[e], part), 1.0) for e in ("torch", "onnx"))
        assert np.abs(torch_probs - onnx_probs).max() <= 1e-4
    out = {e: tmp_path / f"{e}.csv" for e in ("torch", "onnx")}
    for engine, path in out.items():
        assert run_cli("predict", run, "--engine", engine, "--tta", "--out", path).returncode == 0
    assert out["torch"].read_bytes() == out["onnx"].read_bytes()


def test_the_export_is_cached_per_checkpoint_and_auto_is_measured_once(runs, tmp_path):
    run = copied(runs.cifar, tmp_path)
    first = run_cli("predict", run, "--engine", "auto", "--out", tmp_path / "a.csv")
    assert first.returncode == 0, first.stderr
    assert "note: engine auto:" in first.stderr and "img/s onnx vs" in first.stderr
    exported = next((run / "onnx").glob("*.onnx"))
    stamp = exported.stat().st_mtime_ns
    record = json.loads((run / "engines.json").read_text())
    (key,) = record
    assert record[key]["chosen"] in ("torch", "onnx") and record[key]["torch"] > 0 and record[key]["onnx"] > 0
    again = run_cli("predict", run, "--engine", "auto", "--out", tmp_path / "b.csv")
    assert again.returncode == 0 and json.loads((run / "engines.json").read_text()) == record
    assert exported.stat().st_mtime_ns == stamp  # not exported again
    last = run_cli("predict", run, "--engine", "onnx", "--checkpoint", "last", "--out", tmp_path / "c.csv")
    assert last.returncode == 0, last.stderr
    assert {p.name.split("-")[0] for p in (run / "onnx").glob("*.onnx")} == {"best", "last"}


def test_an_architecture_that_does_not_export_falls_back_to_torch_with_a_note(runs, tmp_path, monkeypatch):
    def refuse(model, size):
        raise RuntimeError("Exporting the operator 'aten::made_up' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(engines, "_export_bytes", refuse)
    run = copied(runs.cifar, tmp_path)
    result = run_cli("predict", run, "--engine", "onnx", "--out", tmp_path / "s.csv")
    assert result.returncode == 0, result.stderr
    assert "note: test_resnet does not export to ONNX (Exporting the operator 'aten::made_up'" in result.stderr
    assert "torch predicts instead" in result.stderr and ", torch)" in result.stdout
    assert not any((run / "onnx").glob("*.onnx"))


def test_an_export_that_differs_from_torch_is_refused(runs, tmp_path, monkeypatch):
    run = copied(runs.cifar, tmp_path)
    real = engines._export_bytes

    def perturbed(model, size):  # an exporter bug: the head's bias shifted in the exported graph
        with torch.no_grad():
            head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
            head.bias[0] += 5.0
            data = real(model, size)
            head.bias[0] -= 5.0
        return data

    monkeypatch.setattr(engines, "_export_bytes", perturbed)
    result = run_cli("predict", run, "--engine", "onnx", "--out", tmp_path / "s.csv")
    assert result.returncode == 0, result.stderr
    assert "differs from torch by" in result.stderr and "torch predicts instead" in result.stderr
    assert not any((run / "onnx").glob("*.onnx"))


def test_onnxruntime_missing_says_how_to_install(runs, tmp_path, monkeypatch):
    # None in sys.modules: `import onnxruntime` raises ImportError, as it does where the package is not installed
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    run = copied(runs.cifar, tmp_path)
    refused = run_cli("predict", run, "--engine", "onnx", "--out", tmp_path / "s.csv")
    assert_one_line_error(refused, "onnxruntime is not installed", "pip install onnxruntime")
    assert not (tmp_path / "s.csv").exists()
    auto = run_cli("predict", run, "--engine", "auto", "--out", tmp_path / "s.csv")
    assert auto.returncode == 0 and "onnxruntime is not installed, so torch predicts" in auto.stderr


def test_an_unknown_engine_is_a_one_line_error(runs, tmp_path):
    result = run_cli("predict", copied(runs.cifar, tmp_path), "--engine", "tensorrt")
    assert_one_line_error(result, "unknown engine 'tensorrt'", "--engine torch, onnx or auto")


@pytest.mark.parametrize(
    "capability, precision, expected",
    [
        ((7, 5), "auto", torch.float16),  # a T4: no bf16 units, although is_bf16_supported() may say yes
        ((8, 0), "auto", torch.bfloat16),
        ((9, 0), "auto", torch.bfloat16),
        ((7, 5), "bf16", torch.bfloat16),
        ((9, 0), "fp16", torch.float16),
        ((9, 0), "fp32", None),
    ],
)
def test_autocast_dtype_follows_the_gpus_bf16_units(monkeypatch, capability, precision, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(torch.device("cuda", 0), Recipe(precision=precision)) == expected
    assert autocast_dtype(torch.device("cpu"), Recipe(precision=precision)) is None
    assert autocast_dtype(torch.device("cuda", 0), Recipe(amp=False)) is None


def test_a_bad_precision_is_a_one_line_error(runs, tmp_path):
    result = run_cli("predict", copied(runs.cifar, tmp_path), "--precision", "fp8")
    assert_one_line_error(result, "precision", "fp8", "--precision auto, fp32, fp16 or bf16")


def test_the_gpu_batch_is_the_largest_power_of_two_that_fits():
    tried = []

    def fits(batch):  # free memory for at most 300 images of this input
        tried.append(batch)
        return batch <= 300

    assert engines.largest_fitting_batch(fits) == 256 and tried == [2048, 1024, 512, 256]
    assert engines.largest_fitting_batch(lambda batch: False) == 1
    assert engines.largest_fitting_batch(lambda batch: True, ceiling=64) == 64


def test_on_a_cpu_the_batch_follows_the_cores_and_batch_size_overrides(runs, monkeypatch):
    from kaggle_kit.inference.loading import load_run

    assert [engines.cpu_batch_size(c) for c in (1, 2, 3, 4, 16)] == [32, 64, 64, 128, 256]
    loaded = load_run(runs.cifar, device="cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # a Kaggle CPU notebook's cores
    assert engines.batch_choice(loaded, None, views=6) == (128, "4 CPU cores x 32 images")
    assert engines.batch_choice(loaded, 7, views=6) == (7, "--batch-size")
