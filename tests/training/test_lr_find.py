"""`kaggle-kit lr-find`: the learning-rate range test on a generated CIFAR-10 sample."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_line_error, run_cli

TINY = ["--arch", "test_resnet", "--stem", "imagenet", "--batch-size", "32", "--workers", "0"]


def test_lr_find_writes_the_curve_and_suggests_a_rate_below_the_divergence(sample_zips, tmp_path):
    out = tmp_path / "lr"
    # an end rate far past any sane one, so the test sees the divergence stop it early
    result = run_cli(
        "lr-find", "cifar10", "--data-dir", sample_zips["cifar10"], *TINY, "--num-steps", "40", "--end-lr", "1000",
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = pd.read_csv(out / "lr_find.csv")
    summary = json.loads((out / "lr_find.json").read_text())
    assert 5 <= len(curve) < 40, "the divergence ends the test before the last planned rate"
    assert np.allclose(np.diff(np.log(curve["lr"])), np.log(1000 / 1e-7) / 39, rtol=1e-3)  # exponential steps
    assert summary["diverged_lr"] == pytest.approx(curve["lr"].iloc[-1], rel=1e-4)
    assert curve["smoothed_loss"].iloc[-1] > 4 * curve["smoothed_loss"].min()
    suggestion = summary["suggestion"]
    assert 1e-7 <= suggestion < summary["diverged_lr"]
    assert suggestion == pytest.approx(curve["lr"][curve["smoothed_loss"].idxmin()] / 10, rel=1e-4)
    assert f"suggested --lr {suggestion:.2e} for sgd at batch size 32" in result.stdout
    assert summary["recipe"]["arch"] == "test_resnet" and summary["recipe"]["batch_size"] == 32


def test_lr_find_steps_as_train_does_with_accumulation(sample_zips, tmp_path):
    """--accum-steps K: each tested rate is one optimizer step over K batches, and the suggestion says so."""
    out = tmp_path / "lr"
    result = run_cli(
        "lr-find", "cifar10", "--data-dir", sample_zips["cifar10"], *TINY, "--accum-steps", "2", "--num-steps", "5",
        "--end-lr", "1e-3", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out / "lr_find.csv")) == 5
    assert "for sgd at batch size 32 x 2 accumulation steps" in result.stdout


@pytest.mark.parametrize(
    "flags, needle",
    [(["--num-steps", "0"], "--num-steps 0"), (["--end-lr", "1e-8"], "--end-lr 1e-08"), (["--lr", "-1"], "lr")],
)
def test_lr_find_bad_input_is_one_line_error(sample_zips, tmp_path, flags, needle):
    out = tmp_path / "lr"
    result = run_cli("lr-find", "cifar10", "--data-dir", sample_zips["cifar10"], *TINY, *flags, "--out", out)
    assert_one_line_error(result, needle)
    assert not out.exists()


def test_the_tested_rate_keeps_layer_decay_fractions():
    """--layer-decay applies to lr-find as to train: the rate tested is the head's, each layer below a fraction."""
    import torch

    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.models import factory as models
    from kaggle_kit.training.lr_find import set_rate
    from kaggle_kit.training.setup import build_optimizer

    recipe = Recipe(arch="resnet18", pretrained=False, layer_decay=0.5, lr=0.1)
    optimizer = build_optimizer(models.build_model(recipe, 3), recipe, torch.device("cpu"))
    set_rate(optimizer, 2.0)
    rates = sorted({group["lr"] for group in optimizer.param_groups})
    assert rates[-1] == pytest.approx(2.0) and rates[0] < 2.0 * 0.5**3  # stem, 4 stages, head: halving per step
    assert all(group["lr"] == pytest.approx(2.0 * group["lr_scale"]) for group in optimizer.param_groups)


def test_lr_find_warns_when_the_loss_never_fell_and_says_what_to_try(sample_zips, tmp_path):
    """A range too low to train anything (1e-7 to 1e-6): the suggestion would be the range's own start."""
    out = tmp_path / "flat"
    result = run_cli(
        "lr-find", "cifar10", "--data-dir", sample_zips["cifar10"], *TINY, "--num-steps", "8", "--end-lr", "1e-6",
        "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warning: the loss never fell" in result.stderr and "--num-steps" in result.stderr, result.stderr
    assert "never fell" in json.loads((out / "lr_find.json").read_text())["warning"]


def test_lr_find_names_the_edge_a_minimum_sits_at():
    from kaggle_kit.training.lr_find import assess

    lrs = list(np.geomspace(1e-7, 10, 50))
    falling = list(np.linspace(2.3, 0.5, 50))  # lowest at the last rate, never diverged
    assert "--end-lr" in assess(lrs, falling, lrs[-1], None, (1e-7, 10))
    rising = list(np.linspace(2.0, 2.6, 50))
    rising[1] = 1.0  # a dip at the range's start, then nothing but rising
    assert "--start-lr" in assess(lrs, rising, lrs[1], None, (1e-7, 10))
    assert "never fell" in assess(lrs, [2.3] * 50, lrs[0], None, (1e-7, 10))
    bowl = list((np.log10(lrs) + 2) ** 2 / 10 + 1.0)  # lowest at 1e-2, well inside the range
    assert assess(lrs, bowl, lrs[int(np.argmin(bowl))], lrs[-1], (1e-7, 10)) is None
