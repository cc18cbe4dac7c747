"""`kaggle-kit tune` on the tiny CIFAR-10 sample: the space file's checks, pruning of hopeless trials through the
training hook, and two worker processes sharing one journal-file study under a trial cap."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import optuna
import pandas as pd
import pytest
from helpers import KAGGLE_KIT, REPO, TINY_CPU_ARGS, assert_one_line_error, run_cli
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from kaggle_kit.competitions.bootstrap import Interval
from kaggle_kit.config.flags import parse_recipe_argv
from kaggle_kit.core.errors import KitError
from kaggle_kit.study.tune_space import load_space, parse_space

TRIAL_ARGS = [*TINY_CPU_ARGS, "--tta", "off", "--seed", "1"]

HOPELESS = """
pruner = "median"
startup_trials = 2
seed = 0
[params.lr]
distribution = "categorical"
choices = [0.05, 10.0]
"""


def space_error(data: dict) -> str:
    with pytest.raises(KitError) as caught:
        parse_space(data, "space.toml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("params", "needles"),
    [
        ({"data_dir": {"distribution": "categorical", "choices": ["a"]}}, ["[params.data_dir]", "not a recipe field"]),
        ({"lrate": {"distribution": "uniform", "low": 0.1, "high": 0.2}}, ["[params.lrate]", "not a recipe field"]),
        ({"device": {"distribution": "categorical", "choices": ["cpu"]}}, ["[params.device]", "cannot vary"]),
        ({"lr": {"distribution": "log-uniform", "low": 0.3, "high": 0.3}}, ["[params.lr]", "empty range"]),
        ({"lr": {"distribution": "log-uniform", "low": 0.0, "high": 0.3}}, ["[params.lr]", "above 0"]),
        ({"lr": {"distribution": "normal", "low": 0.1, "high": 0.3}}, ["[params.lr]", "log-uniform"]),
        ({"lr": {"distribution": "uniform", "low": 0.1, "high": 0.3, "step": 1}}, ["[params.lr]", "'step'"]),
        ({"optimizer": {"distribution": "categorical", "choices": []}}, ["[params.optimizer]", "non-empty"]),
        ({"optimizer": {"distribution": "categorical", "choices": ["sgd", "lion"]}}, ["[params.optimizer]", "lion"]),
        ({"img_size": {"distribution": "uniform", "low": 32.0, "high": 64.0}}, ["[params.img_size]", "use int"]),
        ({"lr": {"distribution": "int", "low": 1, "high": 3}}, ["[params.lr]", "not a whole-number field"]),
    ],
)
def test_space_errors_name_the_key(params, needles):
    message = space_error({"params": params})
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_space_settings_are_checked():
    assert "pruner 'asha'" in space_error({"pruner": "asha", "params": {"lr": {"distribution": "uniform"}}})
    assert "unknown setting 'sampler'" in space_error({"sampler": "tpe", "params": {}})
    assert "no [params.FIELD]" in space_error({"pruner": "median"})


def test_built_in_spaces_load():
    for competition in ("cifar10", "dog_breed"):
        space = load_space(REPO / "competitions" / competition / "spaces" / "default.toml")
        assert space.pruner == "median" and {p.name for p in space.params} >= {"lr", "weight_decay"}


def test_cli_refuses_a_bad_space_and_a_flag_that_fixes_a_searched_field(tiny_cifar, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[params.data_dir]\ndistribution = "categorical"\nchoices = ["x"]\n')
    result = run_cli("tune", "cifar10", "--data-dir", tiny_cifar, "--space", bad, *TRIAL_ARGS)
    assert_one_line_error(result, "bad.toml", "[params.data_dir]")
    good = tmp_path / "lr.toml"
    good.write_text(HOPELESS)
    result = run_cli("tune", "cifar10", "--data-dir", tiny_cifar, "--space", good, "--lr", "0.1", *TRIAL_ARGS)
    assert_one_line_error(result, "[params.lr] is searched", "--lr")
    result = run_cli("tune", "cifar10", "--data-dir", tiny_cifar, "--space", good, "--storage", "sqlite:///x.db")
    assert_one_line_error(result, "SQLite", "database is locked")
    unreachable = "postgresql://kaggle:s3cret-pw@127.0.0.1:1/kaggle"  # port 1: refused at once
    args = ["tune", "cifar10", "--data-dir", tiny_cifar, "--space", good, "--storage", unreachable, *TRIAL_ARGS]
    result = run_cli(*args, env={"KAGGLE_KIT_RUNS_DIR": tmp_path / "runs"})
    assert_one_line_error(result, "postgresql://kaggle:***@127.0.0.1:1/kaggle", "cannot open the database")
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert not (tmp_path / "runs" / "cifar10" / "tune-lr").exists()  # no study folder claims the wrong URL


def journal_study(study_dir, name):
    storage = JournalStorage(JournalFileBackend(str(study_dir / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def test_hopeless_trials_are_pruned_and_their_folders_say_so(tiny_cifar, tmp_path):
    space = tmp_path / "hopeless.toml"
    space.write_text(HOPELESS)
    args = ["tune", "cifar10", "--data-dir", tiny_cifar, "--space", space, "--trials", "4", "--epochs", "3"]
    result = run_cli(*args, *TRIAL_ARGS, env={"KAGGLE_KIT_RUNS_DIR": tmp_path / "runs"})
    assert result.returncode == 0, result.stderr
    study_dir = tmp_path / "runs" / "cifar10" / "tune-hopeless"
    trials = journal_study(study_dir, "hopeless").trials
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, result.stderr
    for trial in pruned:
        assert trial.params["lr"] == 10.0  # only the hopeless learning rate is cut short
        record = json.loads((study_dir / f"trial-{trial.number:03d}" / "trial.json").read_text())
        history = (study_dir / f"trial-{trial.number:03d}" / "history.csv").read_text().splitlines()
        assert record["state"] == "pruned" and record["epochs"] == len(history) - 1
        assert f"median pruner after epoch {record['epochs']}" in record["pruned"]
    for trial in trials:
        assert (study_dir / f"trial-{trial.number:03d}" / "best.pt").is_file()  # an ordinary run, pruned or not
    assert "pruned" in result.stdout
    for trial in trials:  # each trial's line and the best line carry the figure's interval and n
        if trial.state == TrialState.COMPLETE:
            interval = Interval.from_dict(trial.user_attrs["interval"])
            split = json.loads((study_dir / f"trial-{trial.number:03d}" / "split.json").read_text())
            assert interval.n == len(split["val_ids"]) and interval.value == pytest.approx(trial.value)
            assert f"trial {trial.number} complete: accuracy {interval} - higher is better" in result.stderr
    assert re.search(r"best: trial \d+, accuracy [\d.]+ \[[\d.]+, [\d.]+\] n=\d+ - higher", result.stdout)

    # --resume continues the study from study.json alone; --report tables, plots and the best trial's command
    result = run_cli("tune", "--resume", study_dir, "--trials", "5", env={"KAGGLE_KIT_RUNS_DIR": tmp_path / "runs"})
    assert result.returncode == 0, result.stderr
    assert len(journal_study(study_dir, "hopeless").trials) == 5
    result = run_cli("tune", "--report", study_dir)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(study_dir / "report" / "trials.csv")
    assert list(table.columns) == ["trial", "state", "accuracy", "low", "high", "n", "lr", "epochs", "seconds", "run"]
    done = table[table.state == "complete"]  # each complete trial's figure with its interval over its images
    assert ((done.low <= done.accuracy) & (done.accuracy <= done.high) & (done.n == interval.n)).all(), done
    assert table[table.state == "pruned"].low.isna().all()
    assert len(table) == 5 and set(table.state) <= {"complete", "pruned"}
    assert (table[table.state == "pruned"].lr == 10.0).all() and (table.state == "pruned").any()
    best = table[table.state == "complete"].sort_values("accuracy").iloc[-1]
    command = (study_dir / "report" / "best_command.txt").read_text()
    assert command.startswith("kaggle-kit train cifar10 --data-dir ") and f"--lr {float(best.lr)!r}" in command
    assert float(parse_recipe_argv(shlex.split(command)[5:])["lr"]) == best.lr
    for name in ("history.png", "parallel_coordinates.png"):
        assert (study_dir / "report" / name).read_bytes()[:4] == b"\x89PNG"
    assert "| trial | state | accuracy | low | high | n | lr |" in (study_dir / "report" / "trials.md").read_text()

    # `ensemble STUDY --top 2` blends the two best complete trials, and says their choice flatters its figure
    complete = table[table.state == "complete"].sort_values(["accuracy", "trial"], ascending=[False, True])
    blended = run_cli("ensemble", study_dir, "--top", "2", "--out", tmp_path / "top2.csv", "--weights", "equal")
    assert blended.returncode == 0, blended.stderr
    members = json.loads((tmp_path / "top2.csv.ensemble.json").read_text())["members"]
    assert [m["name"] for m in members] == [f"trial-{n:03d}" for n in complete.trial[:2]]
    assert "chosen (by the study, then by --top)" in blended.stdout
    too_many = run_cli("ensemble", study_dir, "--top", str(len(complete) + 1), "--out", tmp_path / "x.csv")
    assert_one_line_error(too_many, f"has {len(complete)} complete trial", "tune --resume")
    assert_one_line_error(run_cli("ensemble", study_dir, "--out", tmp_path / "x.csv"), "tune study", "--top K")


def test_two_workers_share_one_journal_study_up_to_the_cap(tiny_cifar, tmp_path):
    space = tmp_path / "lr.toml"
    space.write_text('pruner = "none"\n[params.lr]\ndistribution = "log-uniform"\nlow = 0.01\nhigh = 0.1\n')
    command = [*KAGGLE_KIT, "tune", "cifar10", "--data-dir", str(tiny_cifar), "--space", str(space)]
    command += ["--trials", "3", "--epochs", "1", *map(str, TRIAL_ARGS)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAGGLE_KIT_RUNS_DIR": str(tmp_path / "runs")}
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    study_dir = tmp_path / "runs" / "cifar10" / "tune-lr"
    trials = journal_study(study_dir, "lr").trials
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 3, [(t.number, t.state, t.user_attrs) for t in trials]
    # a trial beyond the cap is ended unrun and marked surplus; no trial is lost or trained twice
    assert all(t.user_attrs.get("surplus") for t in trials if t not in done)
    folders = sorted(p.name for p in study_dir.glob("trial-*") if (p / "config.json").is_file())
    assert folders == sorted(f"trial-{t.number:03d}" for t in done)
    runs = [json.loads((study_dir / name / "trial.json").read_text())["params"]["lr"] for name in folders]
    assert sorted(runs) == sorted(t.params["lr"] for t in done)


def test_a_fold_group_trial_is_scored_by_its_oof_metric(tiny_cifar, tmp_path):
    space = tmp_path / "lr.toml"
    space.write_text('pruner = "median"\n[params.lr]\ndistribution = "log-uniform"\nlow = 0.01\nhigh = 0.1\n')
    args = ["tune", "cifar10", "--data-dir", tiny_cifar, "--space", space, "--folds", "2", "--trials", "1"]
    result = run_cli(*args, "--epochs", "1", *TRIAL_ARGS, env={"KAGGLE_KIT_RUNS_DIR": tmp_path / "runs"})
    assert result.returncode == 0, result.stderr
    assert "folds are not pruned" in result.stderr
    study_dir = tmp_path / "runs" / "cifar10" / "tune-lr"
    (trial,) = journal_study(study_dir, "lr").trials
    cv = json.loads((study_dir / "trial-000" / "cv.json").read_text())
    assert trial.state == TrialState.COMPLETE and trial.value == cv["oof_metric"] and cv["folds"] == 2
    assert json.loads((study_dir / "trial-000" / "trial.json").read_text())["epochs"] == 2  # one per fold
    interval = Interval.from_dict(trial.user_attrs["interval"])  # the OOF figure's, over every training image
    assert trial.user_attrs["interval"] == cv["oof_interval"] and interval.n == cv["images"] == 90
    assert f"trial 0 complete: accuracy {interval} - higher is better" in result.stderr, result.stderr
    assert f"best: trial 0, accuracy {interval} - higher is better" in result.stdout, result.stdout


def test_tracked_trials_carry_their_study_trial_and_params_as_mlflow_tags(tiny_cifar, tmp_path):
    from mlflow.tracking import MlflowClient

    space = tmp_path / "lr.toml"
    space.write_text('seed = 0\npruner = "none"\n[params.lr]\ndistribution = "log-uniform"\nlow = 0.01\nhigh = 0.2\n')
    args = ["tune", "cifar10", "--data-dir", tiny_cifar, "--space", space, "--trials", "2", "--track", "mlflow"]
    result = run_cli(
        *args, *TRIAL_ARGS, "--epochs", "1", "--img-size", "24", env={"KAGGLE_KIT_RUNS_DIR": tmp_path / "runs"}
    )
    assert result.returncode == 0, result.stderr
    study_dir = tmp_path / "runs" / "cifar10" / "tune-lr"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tune-lr")  # one MLflow experiment per study
    runs = {run.data.tags["trial"]: run for run in client.search_runs([experiment.experiment_id])}
    for trial in journal_study(study_dir, "lr").trials:
        run = runs[str(trial.number)]
        assert run.data.tags["study"] == "lr" and json.loads(run.data.tags["params"]) == trial.params
        assert run.info.status == "FINISHED" and run.data.params["lr"] == str(trial.params["lr"])
        assert run.data.tags["run_dir"] == str((study_dir / f"trial-{trial.number:03d}").resolve())
    assert len(runs) == 2
    refused = run_cli(*args, "--folds", "2", *TRIAL_ARGS, env={"KAGGLE_KIT_RUNS_DIR": tmp_path / "other"})
    assert_one_line_error(refused, "--track does not log fold groups", "drop --track")


def test_the_api_call_checks_its_arguments_as_the_command_does(tiny_cifar, tmp_path):
    import kaggle_kit as kk

    with pytest.raises(KitError, match="give a competition and space="):
        kk.tune("cifar10", data_dir=tiny_cifar)
    with pytest.raises(KitError, match="continues the study with its study.json settings"):
        kk.tune("cifar10", resume=tmp_path / "runs" / "cifar10" / "tune-x", lr=0.1)
    with pytest.raises(KitError, match=r"\[params.data_dir\]"):
        bad = tmp_path / "bad.toml"
        bad.write_text('[params.data_dir]\ndistribution = "categorical"\nchoices = ["x"]\n')
        kk.tune("cifar10", space=bad, data_dir=tiny_cifar, ray="auto")
