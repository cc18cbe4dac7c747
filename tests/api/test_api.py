"""`import kaggle_kit as kk`: cheap to import, every `train` flag a keyword, and the calls on real run folders."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import kaggle_kit as kk
from kaggle_kit.api.options import OPTION_NAMES, RECIPE_NAMES, RunOptions, split_settings
from kaggle_kit.core.errors import KitError

REPO = Path(__file__).resolve().parents[2]
TINY = dict(arch="test_resnet", img_size=32, aug="none", workers=0, device="cpu", lr=0.05, tta="off", seed=3)


def test_importing_the_package_imports_no_torch():
    """Nor does the command line's: `kaggle-kit --help` or `submit` must not wait seconds for torch."""
    code = "import sys, kaggle_kit, kaggle_kit.cli; assert 'torch' not in sys.modules; print(len(kaggle_kit.__all__))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(kk.__all__)


def test_every_public_call_is_there_and_no_sub_package_shadows_one():
    for name in ("train", "predict", "score", "ensemble", "validate", "submit", "download", "init", "lr_find"):
        assert callable(getattr(kk, name)), name
    for name in ("analyze", "experiment", "package", "push", "runs", "sample", "Run", "FoldGroup", "Hook"):
        assert callable(getattr(kk, name)), name
    shadowed = [name for name in kk.__all__ if (REPO / "kaggle_kit" / name).exists()]
    shadowed += [name for name in kk.__all__ if (REPO / "kaggle_kit" / f"{name}.py").exists()]
    assert not shadowed, f"importing these sub-packages would replace kk.<name>: {shadowed}"
    with pytest.raises(AttributeError):
        kk.no_such_call  # noqa: B018


def test_every_train_flag_is_a_keyword_of_kk_train():
    from kaggle_kit.cli import app

    command = typer.main.get_command(app).commands["train"]
    flags = {param.name: param.opts for param in command.params if param.name != "competition"}
    assert "hooks" in flags and "--hook" in flags["hooks"]  # the repeatable --hook is hooks=[...]
    assert set(flags) == set(OPTION_NAMES) | set(RECIPE_NAMES), set(flags) ^ (set(OPTION_NAMES) | set(RECIPE_NAMES))
    for name, opts in flags.items():  # named as the flag, snake_case
        assert name == "hooks" or f"--{name.replace('_', '-')}" in opts, (name, opts)
    keywords = inspect.signature(kk.train).parameters  # what help(kk.train) and a notebook's completion show
    assert set(flags) <= set(keywords), set(flags) - set(keywords)
    options, overrides = split_settings({name: None for name in flags})
    assert (options, overrides) == (RunOptions(), {})  # None: not given, as an absent flag


def test_every_command_taking_quiet_is_a_call_taking_quiet(tmp_path):
    from kaggle_kit.cli import app
    from kaggle_kit.core import progress

    commands = typer.main.get_command(app).commands
    quiet = {name.replace("-", "_") for name, c in commands.items() if any("--quiet" in p.opts for p in c.params)}
    assert {"train", "predict", "ensemble", "package", "tune", "experiment", "lr_find"} <= quiet
    for name in quiet & set(kk.__all__):
        assert "quiet" in inspect.signature(getattr(kk, name)).parameters, name
    was = progress.enabled()
    with pytest.raises(KitError, match="neither a run folder"):  # the keyword reaches the call, not a TypeError
        kk.ensemble([tmp_path / "run"], tmp_path / "blend.csv", quiet=True)
    assert progress.enabled() == was


def test_an_unknown_keyword_fails_naming_the_close_ones():
    with pytest.raises(KitError, match=r"unknown setting batchsize \(did you mean batch_size"):
        kk.train("cifar10", batchsize=4)


def test_train_predict_score_and_runs_of_a_single_run(tiny_cifar, tmp_path, capfd):
    out = tmp_path / "runs" / "cifar10" / "one"
    run = kk.train("cifar10", data_dir=tiny_cifar, out=out, epochs=1, batch_size=16, analyze=False, **TINY)
    assert " eta " in capfd.readouterr().err  # a notebook's call shows its progress
    # the Run object shows the best figure with its interval and n, as train printed it
    assert run.best_interval.value == run.best_score and f"{run.best_interval}" in repr(run)
    assert run.best_interval.n == len(json.loads((out / "split.json").read_text())["val_ids"])
    # quiet=True silences predict's progress as it does train's, whichever way predict is called
    for predicted in (lambda: kk.predict(run, out=tmp_path / "q.csv", quiet=True), lambda: run.predict(quiet=True)):
        assert len(predicted().frame) == 30
        assert " eta " not in capfd.readouterr().err
    run.predict(out=tmp_path / "shown.csv")
    assert " eta " in capfd.readouterr().err
    assert isinstance(run, kk.Run) and run.folder == out
    assert list(run.history["epoch"]) == [1]
    assert run.best_score == run.competition.metric.best(run.history["val_metric"].tolist())
    assert run.config["recipe"]["batch_size"] == run.recipe.batch_size
    assert run.calibration["temperature"] > 0
    submission = kk.predict(run, out=tmp_path / "sub.csv")
    assert submission.path == tmp_path / "sub.csv" and len(submission.frame) == 30
    assert list(submission.frame.columns) == ["id", "label"]
    assert kk.validate(submission).ok
    accuracy = kk.score(submission, answers=tiny_cifar / "answers.csv")
    assert 0 <= accuracy <= 1
    listed = kk.runs(root=tmp_path / "runs")
    assert list(listed["run_dir"]) == [str(out)] and listed["epochs"].iloc[0] == 1
    with pytest.raises(KitError, match="so --epochs would be ignored"):  # the CLI's refusal, word for word
        kk.train(resume=run, epochs=5)


def test_folds_return_a_fold_group_that_predicts(tiny_cifar, tmp_path, capfd):
    group = kk.train("cifar10", data_dir=tiny_cifar, out=tmp_path / "g", folds=2, epochs=1, batch_size=16,
                     quiet=True, **TINY)  # fmt: skip
    assert " eta " not in capfd.readouterr().err  # kk.train(quiet=True): no progress lines
    assert isinstance(group, kk.FoldGroup) and group.k == 2
    assert [run.folder.name for run in group.folds] == ["fold-1", "fold-2"]
    assert group.best_score == group.cv["oof_metric"]
    assert group.best_interval.value == group.best_score and group.best_interval.n == 90
    assert f"OOF {group.best_interval}" in repr(group)
    frame, path = group.predict(out=tmp_path / "group.csv")  # the DataFrame and its path, as a pair too
    assert len(frame) == 30 and path == tmp_path / "group.csv"
    with pytest.raises(KitError, match="pseudo-labels is for single runs"):
        kk.train("cifar10", data_dir=tiny_cifar, folds=2, pseudo_labels=group)


def test_nproc_workers_get_the_same_request_as_a_command_line(tmp_path):
    """kk.train(nproc=N) runs N `kaggle-kit train` workers: the command line it writes must parse back to the
    very options and recipe settings it was given."""
    from kaggle_kit.api.options import train_argv
    from kaggle_kit.cli import app

    settings = dict(data_dir=tmp_path, out=tmp_path / "run", nproc=2, track=["tensorboard"], hooks=["my_hooks:Count"])
    settings.update(analyze=False, lr=0.05, freeze=False, unfreeze_after=None, epochs=3, arch="resnet18")
    options, overrides = split_settings(settings)
    argv = train_argv("cifar10", options, overrides)
    assert argv[:2] == ["train", "cifar10"]
    command = typer.main.get_command(app).commands["train"]
    parsed = command.make_context("train", argv[1:]).params
    assert parsed["competition"] == "cifar10"
    back, back_overrides = split_settings({k: v for k, v in parsed.items() if k != "competition"})
    assert back == options
    assert {k: float(v) if k == "lr" else v for k, v in back_overrides.items()} == overrides
    with pytest.raises(KitError, match="give it as 'module:Class' text"):
        train_argv("cifar10", split_settings(dict(nproc=2, hooks=[kk.Hook()]))[0], {})
