"""Training on generated samples through the real entry points: learning, schedules, freezing,
reproducibility, the run folder, and bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import assert_one_line_error, run_cli

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.config.recipe import Recipe
from kaggle_kit.models import factory as models
from kaggle_kit.records.run_folder import HISTORY_COLUMNS, RunDir
from kaggle_kit.training import train
from kaggle_kit.training.schedules import build_scheduler, lr_factor

TINY = dict(arch="test_resnet", img_size=32, batch_size=32, workers=0, device="cpu")


def test_cifar_learns_far_better_than_chance_and_writes_the_run_folder(cifar_run):
    out, result = cifar_run
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS and len(history) == 4
    assert history["val_metric"].max() > 0.5  # chance is 0.1
    config = json.loads((out / "config.json").read_text())
    assert config["competition"] == "cifar10" and config["recipe"]["arch"] == "test_resnet"
    assert config["recipe"]["seed"] == 7 and len(config["fingerprint"]) == 16 and config["versions"]["torch"]
    assert config["data_path"] == "DataLoader with 0 worker processes, normalised on cpu"  # gpu_data auto, no CUDA
    assert config["augment"] == {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in resolve("cifar10").augmentation("none").__dict__.items()
    }
    split = json.loads((out / "split.json").read_text())
    predictions = np.load(out / "val_predictions.npz")
    assert sorted(predictions["ids"].tolist(), key=int) == sorted(split["val_ids"], key=int)
    assert predictions["logits"].shape == (len(split["val_ids"]), 10)
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    best = RunDir(out).load_checkpoint("best")
    assert best["metric"] == pytest.approx(history["val_metric"].max())
    assert "best validation accuracy" in result.stdout and "higher is better" in result.stdout
    # every validation figure carries its 95% interval and n: each epoch's row, and the best one as printed
    assert (history["val_low"] <= history["val_metric"]).all() and (history["val_metric"] <= history["val_high"]).all()
    assert (history["val_n"] == len(split["val_ids"])).all() and history["val_groups"].isna().all()
    best_row = history.loc[history["val_metric"].idxmax()]
    shown = f"best validation accuracy {best_row['val_metric']:.4f} [{best_row['val_low']:.3f}, "
    assert shown in result.stdout and f"] n={len(split['val_ids'])} - higher is better" in result.stdout, result.stdout


def test_dog_breed_log_loss_beats_a_uniform_guess(sample_zips, tmp_path):
    result = train(
        "dog_breed",
        sample_zips["dog_breed"],
        out=tmp_path / "dog",
        epochs=3,
        lr=0.05,
        aug="none",
        pretrained=False,
        freeze=False,
        unfreeze_after=None,
        eval_resize=None,
        val_fraction=0.25,
        **TINY,
    )
    assert result.best_metric < math.log(120) - 0.2  # a uniform guess scores ln(120) = 4.79


def test_same_seed_same_cpu_run(tiny_cifar, tmp_path):
    kwargs = dict(epochs=1, aug="modern", lr=0.05, seed=3, **TINY)
    first = train("cifar10", tiny_cifar, out=tmp_path / "a", **kwargs)
    second = train("cifar10", tiny_cifar, out=tmp_path / "b", **kwargs)
    a = RunDir(first.run_dir).load_checkpoint("last")["model"]
    b = RunDir(second.run_dir).load_checkpoint("last")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.history[0]["train_loss"] == second.history[0]["train_loss"]


def test_freeze_changes_only_the_head(sample_zips, tmp_path):
    result = train(
        "cifar10", sample_zips["cifar10"], out=tmp_path / "frozen", epochs=1, freeze=True, aug="none", **TINY
    )
    trained = RunDir(result.run_dir).load_checkpoint("last")["model"]
    recipe = Recipe.from_dict(RunDir(result.run_dir).config()["recipe"]).replace(freeze=False)
    torch.manual_seed(recipe.seed)
    start = models.build_model(recipe, 10).state_dict()
    head = {name for name, _ in models.build_model(recipe, 10).get_classifier().named_parameters()}
    changed = {k for k in trained if trained[k].is_floating_point() and not torch.equal(trained[k], start[k])}
    assert changed and all(k.split(".", 1)[-1] in head or k.startswith(("fc.", "head.")) for k in changed), changed


@pytest.mark.parametrize(
    "schedule,expected",
    [
        ("constant", [1, 1, 1, 1, 1, 1]),
        ("step", [1, 1, 0.5, 0.5, 0.25, 0.25]),
        ("cosine", [1, 0.9330, 0.75, 0.5, 0.25, 0.0670]),
    ],
)
def test_each_schedule_yields_its_lr_curve(schedule, expected):
    recipe = Recipe(schedule=schedule, epochs=6, step_period=2, step_gamma=0.5, lr=0.1)
    assert [round(lr_factor(recipe, e), 4) for e in range(6)] == pytest.approx(expected, abs=1e-4)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(optimizer, recipe, steps_per_epoch=3)
    seen = []
    for _ in range(18):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[::3] == pytest.approx([0.1 * f for f in expected], abs=1e-5)


def test_warmup_and_onecycle_shapes():
    warm = Recipe(schedule="cosine", epochs=10, warmup_epochs=2)
    assert lr_factor(warm, 0.5) == pytest.approx(0.25) and lr_factor(warm, 2) == pytest.approx(1.0)
    cycle = Recipe(schedule="onecycle", epochs=10, warmup_epochs=3)
    assert lr_factor(cycle, 1.5) == pytest.approx(0.5) and lr_factor(cycle, 3) == pytest.approx(1.0)
    assert lr_factor(cycle, 6.5) == pytest.approx(0.5) and lr_factor(cycle, 10) == 0.0


def test_train_help_lists_every_recipe_flag():
    result = run_cli("train", "--help")
    for flag in (
        "--arch",
        "--epochs",
        "--lr",
        "--batch-size",
        "--img-size",
        "--stem",
        "--pretrained",
        "--weights",
        "--freeze",
        "--unfreeze-after",
        "--aug",
        "--schedule",
        "--seed",
        "--device",
        "--resume",
        "--nproc",
    ):
        assert flag in result.stdout, flag


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--arch", "resnet33"], "resnet34"),
        (["--lr", "-1"], "lr"),
        (["--epochs", "0"], "epochs"),
        (["--schedule", "triangle"], "schedule"),
        (["--aug", "heavy"], "augmentation"),
        (["--recipe", "papr"], "paper"),
        (["--weights", "/nonexistent/w.safetensors"], "w.safetensors"),
    ],
)
def test_bad_training_input_is_one_line(sample_zips, tmp_path, args, needle):
    result = run_cli(
        "train", "cifar10", "--data-dir", sample_zips["cifar10"], "--out", tmp_path / "r", "--epochs", "1", *args
    )
    assert_one_line_error(result, needle)
    assert not (tmp_path / "r" / "last.pt").exists()


def test_the_cifar_paper_recipe_normalises_with_the_studys_statistics(tiny_cifar, tmp_path):
    """The study (Dive into Deep Learning's CIFAR-10 chapter) trained from scratch on CIFAR-10's own mean/std;
    the run records them, and prediction reads them back from config.json."""
    out = tmp_path / "paper"
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        tiny_cifar,
        "--out",
        out,
        "--recipe",
        "paper",
        "--epochs",
        "1",
        "--arch",
        "test_resnet",
        "--stem",
        "imagenet",
        "--batch-size",
        "64",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-analyze",  # the normalisation is read from config.json
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["normalize"] == "dataset"
    assert config["normalization"] == {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}


def test_full_train_keeps_no_validation_images_to_score_on(tiny_cifar, tmp_path):
    """--full-train trains on every image, so no score, best epoch or temperature may come from images it saw."""
    out = tmp_path / "full"
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        tiny_cifar,
        "--out",
        out,
        "--epochs",
        "2",
        "--full-train",
        "--arch",
        "test_resnet",
        "--batch-size",
        "32",
        "--aug",
        "none",
        "--workers",
        "0",
    )
    assert result.returncode == 0, result.stderr
    history = pd.read_csv(out / "history.csv")
    assert history["val_metric"].isna().all() and not (out / "val_predictions.npz").exists()
    assert "no validation split" in result.stdout and "calibrated" not in result.stdout
    assert RunDir(out).load_checkpoint("best")["epoch"] == 1  # the final model, not a validation pick


def test_a_warmup_longer_than_the_run_is_shortened_and_said(tiny_cifar, tmp_path):
    """The `fast` recipe warms up for 5 epochs; run for 3 the rate would only ever rise. It warms up for 30% of the
    run instead, peaks and comes down, and the run says so."""
    recipe = resolve("cifar10").recipe("fast").replace(epochs=3)
    assert recipe.warmup_epochs == 5 and recipe.warmup_length() == pytest.approx(0.9)
    factors = [lr_factor(recipe, e) for e in (0.45, 0.9, 2.0, 3.0)]
    assert factors[0] == pytest.approx(0.5) and factors[1] == pytest.approx(1.0) and factors[3] == 0.0
    assert factors[2] < factors[1]
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        tiny_cifar,
        "--out",
        tmp_path / "fast",
        "--recipe",
        "fast",
        "--epochs",
        "3",
        "--arch",
        "test_resnet",
        "--batch-size",
        "32",
        "--workers",
        "0",
        "--no-analyze",  # the schedule is read from history.csv
    )
    assert result.returncode == 0, result.stderr
    assert "note: warmup_epochs=5 would not end within --epochs 3" in result.stderr
    lrs = pd.read_csv(tmp_path / "fast" / "history.csv")["lr"].tolist()
    assert lrs[2] < max(lrs), lrs


def test_resume_refuses_settings_it_would_ignore(cifar_run, tmp_path):
    import shutil

    out = Path(shutil.copytree(cifar_run[0], tmp_path / "run"))  # the shared run stays as trained if this fails
    refused = run_cli("train", "--resume", out, "--epochs", "8", "--lr", "0.01")
    assert_one_line_error(refused, "--epochs, --lr would be ignored", "config.json", "drop them")
    other = run_cli("train", "dog_breed", "--resume", out)
    assert_one_line_error(other, "is a cifar10 run, not dog_breed")


def test_a_second_ctrl_c_while_saving_still_returns_a_resumable_run(sample_zips, tmp_path, monkeypatch):
    """Ctrl-C ends the epoch loop; a second one while the last curves are drawn must not turn the run into a
    traceback without its resume command: the run still comes back as interrupted, its checkpoint intact."""

    def first_ctrl_c(row):
        raise KeyboardInterrupt

    def second_ctrl_c(self, label):
        raise KeyboardInterrupt

    import kaggle_kit.training.entry as entry

    real_fit = entry.fit
    monkeypatch.setattr(entry, "fit", lambda *a, **k: real_fit(*a, **{**k, "on_epoch": first_ctrl_c}))
    monkeypatch.setattr(RunDir, "plot_curves", second_ctrl_c)
    result = train("cifar10", sample_zips["cifar10"], out=tmp_path / "run", epochs=3, aug="none", **TINY)
    assert result.interrupted and result.epochs_run == 1
    assert RunDir(tmp_path / "run").load_checkpoint("last")["epoch"] == 0


def test_settings_without_effect_are_noted():
    assert Recipe(epochs=10).notes() == []
    unfrozen = [
        "unfreeze_after=2 has no effect: the backbone is not frozen, so every layer trains from epoch 1 "
        "(add --unfreeze-after none to say so)"
    ]
    assert Recipe(epochs=10, unfreeze_after=2).notes() == unfrozen
    # Dog Breed's best recipe freezes, then thaws after 2 epochs; --no-freeze on it is the user's way, not a slip
    best = resolve("dog_breed").recipe("best")
    assert best.freeze and best.unfreeze_after == 2 and best.replace(freeze=False).notes() == unfrozen
    assert best.replace(freeze=False, unfreeze_after=None).notes() == []
    assert Recipe(epochs=2, freeze=True, unfreeze_after=2).notes() == [
        "unfreeze_after=2 is not before --epochs 2: the backbone stays frozen for the whole run"
    ]
    assert Recipe(epochs=2, warmup_epochs=2).warmup_length() == pytest.approx(0.6)
    assert Recipe(epochs=10, mix_prob=0.5).notes() == [
        "mix_prob=0.5 has no effect: --mixup-alpha and --cutmix-alpha are 0"
    ]
    assert Recipe(epochs=10, mix_prob=0.5, mixup_alpha=0.2).notes() == []
    assert "--full-train keeps no validation" in Recipe(epochs=10, early_stop_patience=2, full_train=True).notes()[0]
    assert "without pretrained weights" in Recipe(epochs=10, layer_decay=0.7, pretrained=False).notes()[0]
    assert Recipe(epochs=10, layer_decay=0.7, pretrained=True).notes() == []


def test_resuming_a_run_without_last_pt_says_it_starts_again(cifar_run, tmp_path):
    import shutil

    out = tmp_path / "no-last"
    shutil.copytree(cifar_run[0], out)
    for name in ("last.pt", "last.prev.pt"):
        (out / name).unlink(missing_ok=True)
    result = run_cli("train", "--resume", out, "--no-analyze")  # a retrained run's pictures are cifar_run's
    assert result.returncode == 0, result.stderr
    assert "has no last.pt" in result.stderr and "starts again from epoch 1" in result.stderr
    assert len(pd.read_csv(out / "history.csv")) == 4


def test_every_epoch_a_person_reads_is_counted_from_one_as_the_progress_bar(cifar_run, tmp_path):
    """The bar's "epoch 4/4", the epoch lines, history.csv, the end-of-train summary, predict's and score's
    "best.pt epoch N": one count, from 1. The shared run trained with KAGGLE_KIT_PROGRESS=1 and --tta off."""
    import re
    import shutil

    out = tmp_path / "run"
    shutil.copytree(cifar_run[0], out)  # predict calibrates into the run folder
    env = {"KAGGLE_KIT_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    trained = cifar_run[1]
    assert "epoch 4/4" in trained.stderr and "epoch 5/" not in trained.stderr
    assert re.findall(r"^epoch (\d+): lr", trained.stderr, re.M) == ["1", "2", "3", "4"]
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    best = int(history["epoch"][history["val_metric"].idxmax()])  # the first of equals, as the trainer keeps it
    assert f"(epoch {best})\n" in trained.stdout
    assert RunDir(out).load_checkpoint("best")["epoch"] == best - 1  # the checkpoint keeps the loop's own index
    predicted = run_cli("predict", out, "--out", tmp_path / "c.csv", "--device", "cpu", env=env)
    assert predicted.returncode == 0, predicted.stderr
    assert f"best.pt epoch {best}," in predicted.stdout
    scored = run_cli("score", out, "--device", "cpu", env=env)
    assert scored.returncode == 0 and f"(best.pt, epoch {best})" in scored.stdout


def test_a_history_written_from_zero_reads_counted_from_one(cifar_run, tmp_path):
    """Run folders made before history.csv counted from 1 still read (report, runs, curves) in the one count."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(cifar_run[0], old)
    history = pd.read_csv(old / "history.csv")
    history.assign(epoch=history["epoch"] - 1).to_csv(old / "history.csv", index=False)
    written_now = pd.read_csv(cifar_run[0] / "history.csv")["epoch"].tolist()
    assert RunDir(old).history()["epoch"].tolist() == [1, 2, 3, 4] == written_now


def test_a_run_called_from_python_records_its_own_command(cifar_run, sample_zips):
    """`cli.main([...])` from Python (a notebook, these tests): the run's recorded command is the one it was
    given, not the calling program's sys.argv (which a --nproc launcher would also have re-run)."""
    out, _ = cifar_run
    command = json.loads((out / "config.json").read_text())["command"]
    assert command[:3] == ["kaggle-kit", "train", "cifar10"]
    assert "--out" in command and str(sample_zips["cifar10"]) in command
