"""Experiment tracking through the real `train` command: the MLflow run read back with MLflow's own client from
the SQLite store, TensorBoard event files, Kaggle scores as the ledger records them, a tracking server that
refuses connections, and an experiment's cells as runs of one MLflow experiment. Runs are tiny (one or two epochs)."""

import csv
import glob
import json
import socket
import struct
import types

import pytest
import torch
from helpers import assert_one_line_error, run_cli, run_cli_process
from mlflow.tracking import MlflowClient

from kaggle_kit.cli.experiment import _print_event
from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.study.experiment import run_experiment
from kaggle_kit.submissions.ledger import COMPLETE, Ledger

torch.set_num_threads(1)

# batch 16: resolve's smallest (issue 14), so 180 images raise no too-few-steps warning; these tests count warnings
TINY = ["--arch", "test_resnet", "--batch-size", "16", "--workers", "0", "--device", "cpu"]


def clean_env(tmp_path, **more) -> dict:
    """MLflow's and kaggle-kit's locations pointed into the test's folder; nothing of the machine's leaks in."""
    return {"KAGGLE_KIT_RUNS_DIR": str(tmp_path / "runs"), "MLFLOW_TRACKING_URI": "", "OMP_NUM_THREADS": "1", **more}


def store(tmp_path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")


def history(run) -> list[dict]:
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files: TFRecord frames (length, its CRC, an Event, its CRC) read directly."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list] = {}
    for path in sorted(glob.glob(str(folder / "events.out.tfevents.*"))):
        data, at = open(path, "rb").read(), 0
        while at < len(data):
            (size,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + size])
            at += 12 + size + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One run trained with both trackers through the real command."""
    root = tmp_path_factory.mktemp("tracking")
    write_sample(resolve("cifar10"), root / "data", n_train=200, n_test=20)
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        root / "data",
        "--out",
        root / "run",
        "--epochs",
        "2",
        *TINY,
        "--track",
        "mlflow",
        "--track",
        "tensorboard",
        cwd=root,
        env=clean_env(root),
    )
    assert result.returncode == 0, result.stderr
    return types.SimpleNamespace(root=root, run=root / "run", data=root / "data", result=result)


def test_mlflow_run_holds_recipe_epochs_and_pictures(tracked):
    client = store(tracked.root)
    experiment = client.get_experiment_by_name("cifar10")
    (run,) = client.search_runs([experiment.experiment_id])
    config = json.loads((tracked.run / "config.json").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert json.loads((tracked.run / "tracking.json").read_text())["mlflow"]["run_id"] == run.info.run_id
    for key, value in config["recipe"].items():
        assert run.data.params[key] == str(value), key
    rows = history(tracked.run)
    assert len(rows) == 2
    for name in ("train_loss", "val_loss", "val_metric", "lr"):
        logged = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in logged] == [int(r["epoch"]) for r in rows], name
        assert [m.value for m in logged] == pytest.approx([float(r[name]) for r in rows], rel=1e-5), name
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    analysis = {f.path for f in client.list_artifacts(run.info.run_id, "analysis")}
    assert {"curves.png", "config.json", "history.csv", "analysis"} <= top
    assert {"analysis/confusion.png", "analysis/high_loss.png", "analysis/analysis.md"} <= analysis
    assert not any(path.endswith(".pt") for path in top)
    assert "what it gets wrong:" in tracked.result.stdout and "warning" not in tracked.result.stderr


def test_tensorboard_event_files_hold_one_value_per_epoch(tracked):
    scalars = tensorboard_scalars(tracked.run / "tensorboard")
    rows = history(tracked.run)
    assert [step for step, _ in scalars["val_metric"]] == [int(r["epoch"]) for r in rows]
    assert [v for _, v in scalars["val_loss"]] == pytest.approx([float(r["val_loss"]) for r in rows], rel=1e-5)


def test_kaggle_score_reaches_the_run_as_the_ledger_records_it(tracked, tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    record = ledger.add(
        "cifar10", tracked.run / "submission.csv", "0" * 64, run=tracked.run.name, run_dir=str(tracked.run)
    )
    ledger.update(record.id, kaggle_ref=41, status="PENDING")
    ledger.update(record.id, status=COMPLETE, public_score=0.8125, private_score=0.75)
    client = store(tracked.root)
    run_id = json.loads((tracked.run / "tracking.json").read_text())["mlflow"]["run_id"]
    public = client.get_metric_history(run_id, "kaggle_public_score")
    assert [(m.step, m.value) for m in public] == [(41, 0.8125)]
    assert client.get_run(run_id).data.metrics["kaggle_private_score"] == 0.75
    assert tensorboard_scalars(tracked.run / "tensorboard")["kaggle_public_score"] == [(41, 0.8125)]


def test_submit_through_the_fake_kaggle_logs_its_score_to_the_run(tracked, tmp_path):
    """The real commands: predict the tracked run, submit the file; the score Kaggle returns reaches MLflow."""
    from kaggle_server import DEFAULT_KEY, DEFAULT_USERNAME, KaggleServer

    predicted = run_cli("predict", tracked.run, "--out", tmp_path / "sub.csv", env=clean_env(tracked.root))
    assert predicted.returncode == 0, predicted.stderr
    with KaggleServer("cifar10", tracked.data, score_delay=0.1) as server:
        env = clean_env(
            tracked.root,
            HOME=str(tmp_path),
            KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle"),
            KAGGLE_USERNAME=DEFAULT_USERNAME,
            KAGGLE_KEY=DEFAULT_KEY,
            KAGGLE_KIT_API_ENDPOINT=server.url,
            KAGGLE_KIT_SUBMISSIONS_DIR=str(tmp_path / "submissions"),
            NO_PROXY="127.0.0.1,localhost",
        )
        env.update({k: "" for k in ("KAGGLE_API_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")})
        submitted = run_cli("submit", tmp_path / "sub.csv", "--run", tracked.run, "--data-dir", tracked.data, env=env)
    assert submitted.returncode == 0, submitted.stderr
    (record,) = Ledger(tmp_path / "submissions" / "ledger.jsonl").records()
    assert record.status == COMPLETE and record.public_score is not None
    run_id = json.loads((tracked.run / "tracking.json").read_text())["mlflow"]["run_id"]
    logged = store(tracked.root).get_metric_history(run_id, "kaggle_public_score")
    assert (record.kaggle_ref, record.public_score) in [(m.step, m.value) for m in logged]


def test_a_refusing_tracking_server_gives_one_warning_and_a_finished_run(tracked, tmp_path):
    with socket.socket() as closed:  # a port nobody listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = clean_env(tmp_path, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", NO_PROXY="127.0.0.1")
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        tracked.data,
        "--out",
        tmp_path / "run",
        "--epochs",
        "2",
        *TINY,
        "--track",
        "mlflow",
        "--no-analyze",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "run" / "analysis").exists() and "what it gets wrong" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0] and "training goes on" in warnings[0]
    assert len(history(tmp_path / "run")) == 2 and (tmp_path / "run" / "best.pt").is_file()
    assert "trained 2 epochs" in result.stdout


def test_unknown_tracker_is_a_one_line_error(tracked, tmp_path):
    result = run_cli(
        "train",
        "cifar10",
        "--data-dir",
        tracked.data,
        "--out",
        tmp_path / "run",
        *TINY,
        "--track",
        "wandb",
        env=clean_env(tmp_path),
    )
    assert_one_line_error(result, "--track wandb", "--track mlflow")
    assert not (tmp_path / "run").exists()


PLAN = """
competition = "cifar10"
recipe = "paper"
seeds = 1

[overrides]
arch = "test_resnet"
img_size = 32
batch_size = 64
workers = 0
device = "cpu"
epochs = 1
aug = "none"

[grid]
schedule = ["constant", "cosine"]
"""


def test_experiment_logs_each_cell_as_a_run_of_one_experiment(tracked, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_KIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    plan = tmp_path / "tiny-tracked.toml"
    plan.write_text(PLAN)
    events = []
    result = run_experiment(
        plan,
        tracked.data,
        tmp_path / "exp",
        track=["mlflow"],
        ledger=Ledger(tmp_path / "l.jsonl"),
        on_event=events.append,
        status_every_s=0,
    )
    assert len(result.trained) == 2 and not result.failed
    # the whole plan's progress after every epoch: known from the first epoch on, not only after a whole run
    plan = [e for e in events if e["event"] == "plan"]
    assert [(e["epochs_done"], e["epochs_total"], e["runs_done"]) for e in plan] == [(1, 2, 1), (2, 2, 2)]
    assert plan[0]["eta_s"] > 0 and plan[1]["eta_s"] == 0
    capsys.readouterr()  # what the runs said while training (resolve's small-data warning, issue 14) is not this line
    _print_event(plan[0])
    line = capsys.readouterr().err.strip()
    assert line.startswith("plan: 1/2 epochs, 1/2 runs done, elapsed ") and "plan eta 00:" in line
    client = store(tmp_path)
    experiment = client.get_experiment_by_name("exp")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["exp.schedule=constant.seed=0", "exp.schedule=cosine.seed=0"]
    assert {r.data.params["schedule"] for r in runs} == {"constant", "cosine"}
    assert all(
        r.info.status == "FINISHED" and len(client.get_metric_history(r.info.run_id, "val_metric")) == 1 for r in runs
    )


@pytest.mark.slow
def test_under_nproc_only_rank_0_logs(tracked, tmp_path):
    result = run_cli_process(
        "train",
        "cifar10",
        "--data-dir",
        tracked.data,
        "--out",
        tmp_path / "run",
        "--epochs",
        "2",
        "--arch",
        "test_resnet",
        "--batch-size",
        "32",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--nproc",
        "2",
        "--track",
        "mlflow",
        "--no-analyze",
        env=clean_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    client = store(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("cifar10").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_metric")] == [1, 2]  # as history.csv
    assert run.info.status == "FINISHED"
