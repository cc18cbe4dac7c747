"""`train --nproc 2`: two processes on the gloo backend (CPU) through torch's elastic launcher, against a
single-process run of the same recipe; a killed rank; resume; `run_on_gpus` for `experiment --gpus`.

The single-process baseline uses --batch-size 64 and the DDP run 2 x 32: the same global batch, number of
steps and learning rate, so the two differ only in data order, BatchNorm batch statistics and floating point.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from helpers import KAGGLE_KIT, REPO, assert_one_line_error, run_cli, run_cli_process

from kaggle_kit.competitions.registry import resolve
from kaggle_kit.competitions.samples import write_sample
from kaggle_kit.core.launch import how_it_ended, last_line, run_on_gpus
from kaggle_kit.records.run_folder import RunDir
from kaggle_kit.training.schedules import lr_factor

slow = pytest.mark.slow  # trains through the real CLI in several processes: tens of seconds each

# --freeze --unfreeze-after 1: epoch 0 trains the head alone, so DDP has to be rebuilt when the backbone thaws
RECIPE = [
    "--epochs",
    "4",
    "--arch",
    "test_resnet",
    "--stem",
    "imagenet",
    "--img-size",
    "32",
    "--aug",
    "none",
    "--lr",
    "0.05",
    "--schedule",
    "cosine",
    "--warmup-epochs",
    "0",
    "--val-fraction",
    "0.25",
    "--freeze",
    "--unfreeze-after",
    "1",
    "--workers",
    "0",
    "--device",
    "cpu",
    "--seed",
    "5",
]
DDP = ["--nproc", "2", "--batch-size", "32", *RECIPE]
# Final validation accuracy of the DDP run may differ from the single-process run by at most this much. On this
# sample (150 validation images, accuracy 0.75 to 0.97 after 4 epochs) seeds 5, 1 and 2 measured |difference|
# 0.007, 0.020 and 0.047 (1 to 7 images): 0.1 leaves room for that noise yet fails a run that learns markedly
# worse (ranks on unsynchronised weights, images lost from the shards) or a metric computed on the wrong rows.
ACCURACY_TOLERANCE = 0.1
RUN_FILES = {
    "config.json",
    "split.json",
    "history.csv",
    "curves.png",
    "best.pt",
    "last.pt",
    "last.prev.pt",
    "val_predictions.npz",
    "analysis",  # written after training by rank 0 alone, like calibration
}


def _train(*args):
    # the launcher (--nproc) sets up process groups, environment and logging for its ranks: a child of its own
    run = run_cli_process if "--nproc" in args else run_cli
    result = run("train", *map(str, args), timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    # CIFAR-10's default sample (60 images a class): two ranks on half-batches learn it as one process does
    data = write_sample(resolve("cifar10"), root / "data").parent
    # the single-process run is compared by its history and split alone: no error-analysis pictures
    _train("cifar10", "--data-dir", data, "--out", root / "single", "--batch-size", "64", *RECIPE, "--no-analyze")
    ddp = _train("cifar10", "--data-dir", data, "--out", root / "ddp", *DDP)
    return {"data": data, "single": root / "single", "ddp": root / "ddp", "ddp_result": ddp}


@slow
def test_validation_counts_every_image_exactly_once(runs):
    out = runs["ddp"]
    split = json.loads((out / "split.json").read_text())
    predictions = np.load(out / "val_predictions.npz")
    ids = predictions["ids"].tolist()
    assert len(ids) == len(set(ids)) == len(split["val_ids"])  # no padding rows, no image twice
    assert sorted(ids) == sorted(split["val_ids"])
    assert predictions["logits"].shape == (len(ids), 10)
    # the metric in history is the one these rows give
    best = RunDir(out).load_checkpoint("best")
    history = RunDir(out).history()
    accuracy = float((predictions["logits"].argmax(1) == predictions["labels"]).mean())
    best_row = history["epoch"] == best["epoch"] + 1  # history.csv counts from 1, the checkpoint from 0
    assert history.loc[best_row, "val_accuracy"].item() == pytest.approx(accuracy, abs=1e-6)


@slow
def test_two_processes_learn_like_one(runs):
    single, ddp = RunDir(runs["single"]).history(), RunDir(runs["ddp"]).history()
    assert len(single) == len(ddp) == 4
    assert ddp["val_accuracy"].iloc[-1] > 0.5  # chance is 0.1
    difference = abs(ddp["val_accuracy"].iloc[-1] - single["val_accuracy"].iloc[-1])
    print(
        f"final validation accuracy: 1 process {single['val_accuracy'].iloc[-1]:.4f}, "
        f"2 processes {ddp['val_accuracy'].iloc[-1]:.4f}, |difference| {difference:.4f}"
    )
    assert difference <= ACCURACY_TOLERANCE
    # the same split: rank 0 chose it exactly as a single process does
    assert json.loads((runs["single"] / "split.json").read_text()) == json.loads(
        (runs["ddp"] / "split.json").read_text()
    )


@slow
def test_saved_predictions_are_the_saved_models(runs):
    """Every rank validated with rank 0's weights and BatchNorm statistics: the checkpoint reproduces all rows,
    those of rank 1's share included. Unsynchronised backbone gradients after --unfreeze-after, or each rank's
    own running statistics, would make rank 1's rows disagree."""
    from kaggle_kit.data.cache import load_images
    from kaggle_kit.inference.loading import load_run, open_run_layout
    from kaggle_kit.inference.streaming import stream_logits

    out = runs["ddp"]
    loaded = load_run(out, "best", device="cpu")
    assert loaded.epoch == 3  # after the backbone thawed
    layout = open_run_layout(loaded, runs["data"])
    cache = load_images(layout, "train", loaded.recipe.cache_side)
    ids, labels, logits = RunDir(out).val_predictions()
    position = {image_id: n for n, image_id in enumerate(cache.ids)}
    again = stream_logits(
        loaded.model,
        cache,
        np.array([position[i] for i in ids]),
        loaded.recipe,
        loaded.mean,
        loaded.std,
        loaded.device,
        batch_path="loader",
    ).mean
    np.testing.assert_allclose(again, logits, rtol=1e-4, atol=1e-4)


@slow
def test_only_rank_zero_writes(runs):
    out, result = runs["ddp"], runs["ddp_result"]
    assert {p.name for p in out.iterdir()} == RUN_FILES  # no second copy, no leftover temporary file
    lines = (out / "history.csv").read_text().splitlines()
    assert len(lines) == 1 + 4 and len(set(lines)) == len(lines)
    assert RunDir(out).history()["epoch"].tolist() == [1, 2, 3, 4]
    assert result.stdout.count("trained 4 epochs") == 1 and result.stdout.count("run: ") == 1
    assert "error" not in result.stderr.lower() and "Traceback" not in result.stderr
    config = json.loads((out / "config.json").read_text())
    assert "--nproc" in config["command"] and config["recipe"]["batch_size"] == 32


def _rank_process(launcher: subprocess.Popen, rank: int, timeout: float = 60) -> psutil.Process:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for child in psutil.Process(launcher.pid).children():
            try:
                if child.environ().get("RANK") == str(rank):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} worker appeared")


def _kill_rank_one_after_an_epoch(runs, out):
    """Start the DDP run into `out`, SIGKILL rank 1 once an epoch is on disk: (launcher result, seconds to stop)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launcher = subprocess.Popen(
        [*KAGGLE_KIT, "train", "cifar10", "--data-dir", str(runs["data"]), "--out", str(out), *DDP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    rank1 = _rank_process(launcher, 1)
    history = out / "history.csv"
    while not history.is_file():  # one finished epoch on disk, then the crash
        assert launcher.poll() is None, launcher.communicate()
        time.sleep(0.05)
    killed_at = time.monotonic()
    rank1.send_signal(signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=60)  # a hang fails here
    stopped_in = time.monotonic() - killed_at
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in [rank1])
    return subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr), stopped_in


@pytest.fixture(scope="module")
def killed(runs, tmp_path_factory):
    """(run folder, launcher result, seconds to stop) of one DDP run whose rank 1 was SIGKILLed after an epoch:
    read-only; each test resumes its own copy (`shutil.copytree`), in the way it tests."""
    out = tmp_path_factory.mktemp("ddp-killed") / "killed"
    result, stopped_in = _kill_rank_one_after_an_epoch(runs, out)
    return out, result, stopped_in


@slow
def test_killed_rank_ends_the_run_in_one_line_and_resume_finishes_it(runs, killed, tmp_path):
    killed_out, result, stopped_in = killed
    assert_one_line_error(result, "rank 1 of 2", "SIGKILL", f"kaggle-kit train --resume {killed_out} --nproc 2")
    assert result.returncode == 128 + signal.SIGKILL
    assert stopped_in < 20, stopped_in
    finished = len(RunDir(killed_out).history())
    assert 1 <= finished < 4

    out = shutil.copytree(killed_out, tmp_path / "killed")
    resumed = _train("--resume", out, "--nproc", "2", "--no-analyze")  # weights and history are compared
    assert "trained" in resumed.stdout
    # resumed under DDP, the run ends exactly where the uninterrupted DDP run ended
    columns = ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_metric"]
    pd.testing.assert_frame_equal(RunDir(out).history()[columns], RunDir(runs["ddp"]).history()[columns])
    weights, reference = (
        RunDir(out).load_checkpoint("last")["model"],
        RunDir(runs["ddp"]).load_checkpoint("last")["model"],
    )
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


@slow
def test_resuming_with_another_process_count_keeps_the_schedule_in_epochs(runs, killed, tmp_path):
    """2 processes, then 1: twice the steps per epoch. The schedule goes on from the same epoch (the lr of every
    epoch as in the uninterrupted DDP run) and the run says why it will not replay that run exactly."""
    out = shutil.copytree(killed[0], tmp_path / "killed")
    resumed = _train("--resume", out, "--no-analyze")
    assert "steps per epoch instead of" in resumed.stderr and "--nproc" in resumed.stderr
    history, reference = RunDir(out).history(), RunDir(runs["ddp"]).history()
    assert len(history) == 4
    # one schedule of the fractional epoch (schedules.lr_factor); history.csv holds each epoch's mean rate over its
    # own steps (written to 6 digits): the DDP run's steps an epoch, twice as many once resumed in one process
    recipe = RunDir(out).read_config().recipe

    def mean_lr(epoch: int, steps: int) -> float:
        return recipe.lr * float(np.mean([lr_factor(recipe, epoch + k / steps) for k in range(steps)]))

    ddp_steps = [n for n in range(1, 100) if np.isclose(mean_lr(0, n), reference["lr"][0], rtol=1e-5)]
    assert len(ddp_steps) == 1, ddp_steps
    np.testing.assert_allclose(reference["lr"], [mean_lr(e, ddp_steps[0]) for e in range(4)], rtol=1e-5)
    finished = len(RunDir(killed[0]).history())  # epochs the DDP run finished before it was killed
    expected = [mean_lr(e, ddp_steps[0] * (1 if e < finished else 2)) for e in range(4)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-5)


@slow
def test_an_error_on_every_rank_reads_as_one_line(runs, tmp_path):
    result = run_cli_process(
        "train", "cifar10", "--data-dir", runs["data"], "--out", tmp_path / "r", *DDP, "--sync-bn", timeout=120
    )
    assert_one_line_error(result, "--sync-bn needs CUDA GPUs")
    assert result.returncode == 2


# --------------------------------------------------------------------------------------- --gpus

JOB = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[2]))
row = {"job": sys.argv[1], "gpu": os.environ["CUDA_VISIBLE_DEVICES"], "start": start, "end": time.time()}
with open(os.path.join(sys.argv[4], sys.argv[1] + ".json"), "w") as out:
    json.dump(row, out)
sys.exit(int(sys.argv[3]))
"""


def test_run_on_gpus_runs_one_job_per_gpu_at_a_time(tmp_path):
    # Each job reports to its own file: two jobs printing at once may interleave on a shared stdout.
    jobs = [["a", "2.0", "0"], ["b", "2.0", "3"], ["c", "0.2", "0"]]
    codes = run_on_gpus([[*job, str(tmp_path)] for job in jobs], ["0", "1"], program=[sys.executable, "-c", JOB])
    assert codes == [0, 3, 0]  # in job order
    seen = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in "abc"}
    a, b, c = seen["a"], seen["b"], seen["c"]
    assert {a["gpu"], b["gpu"]} == {"0", "1"}
    assert a["start"] < b["end"] and b["start"] < a["end"]  # a and b ran side by side
    same_gpu = a if a["gpu"] == c["gpu"] else b
    assert c["start"] >= same_gpu["end"]  # c waited until its GPU was free


def test_run_on_gpus_appends_each_jobs_output_to_its_log(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # the jobs' output still lands in the order written
    talk = (
        "import os, sys; print('out', os.environ['CUDA_VISIBLE_DEVICES']); "
        "print('error: bad', sys.argv[1], file=sys.stderr); sys.exit(2)"
    )
    logs = [tmp_path / "logs" / "a.log", tmp_path / "logs" / "b.log"]
    logs[0].parent.mkdir()
    logs[0].write_text("earlier attempt\n")
    codes = run_on_gpus([["a"], ["b"]], ["0", "1"], program=[sys.executable, "-c", talk], logs=logs)
    assert codes == [2, 2]
    first = logs[0].read_text().splitlines()
    assert first[0] == "earlier attempt" and first[1].startswith("=== ") and first[1].endswith(" a")
    assert "on GPU 0" in first[1] and first[2:] == ["out 0", "error: bad a"]
    assert last_line(logs[1]) == "error: bad b" and last_line(tmp_path / "missing.log") is None


def test_a_killed_job_is_told_by_its_signal(tmp_path):
    log = tmp_path / "killed.log"
    die = "import os, signal; print('epoch 0: ...'); os.kill(os.getpid(), signal.SIGKILL)"
    (code,) = run_on_gpus([[]], ["0"], program=[sys.executable, "-c", die], logs=[log])
    assert code == -signal.SIGKILL
    assert how_it_ended(code, log) == "was killed by SIGKILL (the out-of-memory killer, or a user)"
    assert how_it_ended(2, log) == "exited with code 2: epoch 0: ..."


def test_run_on_gpus_rejects_a_repeated_gpu():
    from kaggle_kit.core.errors import KitError

    with pytest.raises(KitError, match="repeat"):
        run_on_gpus([["train"]], ["0", "0"])


@slow
def test_torchrun_runs_the_same_command(runs, tmp_path):
    """The documented multi-node form, here on one node: torchrun starts the workers, kaggle-kit only trains."""
    out = tmp_path / "torchrun"
    args = [*DDP[2:]]
    args[args.index("--epochs") + 1] = "1"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "kaggle_kit",
            "train",
            "cifar10",
            "--data-dir",
            str(runs["data"]),
            "--out",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(RunDir(out).history()) == 1
    # both workers share the terminal under torchrun: rank 0 alone reports (and calibrates)
    assert result.stdout.count("trained 1 epoch in") == 1 and result.stdout.count("calibrated") == 1


# --------------------------------------------------------------------------------------- the failure report


def _failure(tmp_path, rank: int, exitcode: int, message: str | None = None, kind: str = "error"):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    error_file = tmp_path / f"{rank}{exitcode}.json"  # one file per failure: ProcessFailure reads any it finds
    if message is not None:
        record = {"message": {"message": message, "kind": kind, "extraInfo": {"py_callstack": "", "timestamp": "1"}}}
        error_file.write_text(json.dumps(record))
    return ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file=str(error_file))


def test_the_report_names_the_rank_that_failed_first_not_its_victims(tmp_path):
    from kaggle_kit.core.launch import describe_failure, first_cause

    argv = ["train", "cifar10", "--out", "runs/a", "--nproc", "2"]
    # rank 1 killed; rank 0 then lost its peer (its record is older: timestamps alone would blame it)
    failures = {0: _failure(tmp_path, 0, 1, "rank 0 lost contact", kind="lost_peer"), 1: _failure(tmp_path, 1, -9)}
    rank, failure = first_cause(failures)
    line, code = describe_failure(rank, failure, 2, argv)
    assert rank == 1 and code == 137
    assert "rank 1 of 2 was killed by SIGKILL" in line and "kaggle-kit train --resume runs/a --nproc 2" in line
    # a worker's own error (a KitError) is reported as it stands, with its exit code
    failures = {0: _failure(tmp_path, 0, 2, "data folder x not found; pass --data-dir"), 1: _failure(tmp_path, 1, -15)}
    assert describe_failure(*first_cause(failures), 2, argv) == ("data folder x not found; pass --data-dir", 2)
    # a bug on rank 1: its exception and its log
    log = tmp_path / "stderr.log"
    log.write_text("Traceback ...\n")
    failures = {0: _failure(tmp_path, 0, -15), 1: _failure(tmp_path, 1, 1, "ValueError: boom", kind="crash")}
    rank, failure = first_cause(failures)
    line, code = describe_failure(rank, failure, 2, argv, log)
    assert rank == 1 and code == 1 and "ValueError: boom" in line and str(log) in line


@slow
def test_workers_stop_and_save_when_the_launcher_is_killed(runs, tmp_path):
    """SIGKILL of the launcher (the out-of-memory killer picks the biggest process) cannot be passed on: the workers
    must notice by themselves, save and stop, instead of training on unseen and racing a later --resume."""
    out = tmp_path / "orphans"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    long_run = [arg if arg != "4" else "400" for arg in DDP]  # --epochs 400: still training when the launcher dies
    launcher = subprocess.Popen(
        [*KAGGLE_KIT, "train", "cifar10", "--data-dir", str(runs["data"]), "--out", str(out), *long_run],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    workers = [_rank_process(launcher, rank) for rank in (0, 1)]
    while not (out / "history.csv").is_file():
        assert launcher.poll() is None, launcher.communicate()
        time.sleep(0.05)
    launcher.send_signal(signal.SIGKILL)
    launcher.communicate(timeout=60)
    gone, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, [p.cmdline() for p in alive]
    assert RunDir(out).has_checkpoint("last") and 1 <= len(RunDir(out).history()) < 400


# --------------------------------------------------------------------------------------- accumulation under DDP


def _accumulation_rank(rank: int, store: str, out: str) -> None:
    """One of two gloo ranks: the trainer's own `train_one_epoch` on a DDP-wrapped BatchNorm-free float64 model
    (BatchNorm sees each micro-batch alone, so it could not match; test_levers does the same), once with
    --accum-steps 2 at batch 4 and once with accumulation 1 at batch 8, counting the gradient all-reduces."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel

    from kaggle_kit.config.recipe import Recipe
    from kaggle_kit.training.epoch import EpochOutcome, train_one_epoch
    from kaggle_kit.training.hooks.accumulation import Accumulation
    from kaggle_kit.training.state import TrainState

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(1)
    x, y = torch.randn(32, 3, 2, 2, dtype=torch.float64), torch.randint(0, 3, (32,))  # the same on both ranks
    mine = slice(16 * rank, 16 * rank + 16)  # each rank's own shard, as the sampler deals them
    x, y = x[mine], y[mine]

    def one_epoch(batch: int, accum_steps: int):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        model = model.double()
        ddp = DistributedDataParallel(model)
        reduces = []

        def counted(state, bucket):
            reduces.append(1)
            return allreduce_hook(state, bucket)

        ddp.register_comm_hook(None, counted)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        recipe = Recipe(batch_size=batch, accum_steps=accum_steps, grad_clip=1.0, label_smoothing=0.1)
        batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, 16, batch)]
        state = TrainState(model, ddp, optimizer, scheduler, scaler)
        hooks = [Accumulation(accum_steps, batch)] if accum_steps > 1 else []  # as `fit` adds it
        row = train_one_epoch(state, batches, (torch.device("cpu"), None, False), recipe, _NoBar(), hooks)
        for hook in hooks:
            hook.after_epoch(state, EpochOutcome(row, False, False))
        return [p.detach().clone() for p in model.parameters()], len(reduces), scheduler.last_epoch, row

    accumulated = one_epoch(4, 2)  # 4 micro-batches: two groups of two
    whole = one_epoch(8, 1)  # 2 batches of twice the size
    dist.destroy_process_group()
    torch.save({"accumulated": accumulated, "whole": whole}, f"{out}/rank{rank}.pt")


class _NoBar:
    def advance(self, steps, postfix=""):
        pass


@slow
def test_accumulation_under_ddp_reduces_once_per_group_and_steps_like_the_doubled_batch(tmp_path):
    """2 ranks x --accum-steps 2 at batch 4 = 2 ranks at batch 8: the same weights (float64, no BatchNorm: to
    1e-12), and one all-reduce per optimizer update, not per micro-batch (no_sync on the micro-batches before the
    last of each group). Dropping no_sync would double the reduces; using it on the last micro-batch too would
    leave each rank on its own gradients, so the ranks' weights (and the batch-8 weights) would differ."""
    import torch.multiprocessing as mp

    mp.spawn(_accumulation_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for rank in ranks:
        (weights, reduces, updates, row), (reference, reduces_whole, updates_whole, _) = (
            rank["accumulated"],
            rank["whole"],
        )
        assert updates == updates_whole == 2  # the schedule moves per update
        assert reduces == reduces_whole > 0  # one gradient exchange per update
        assert row["effective_batch"] == 4 * 2 * 2  # batch x accumulation x ranks
        for a, b in zip(weights, reference):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(ranks[0]["accumulated"][0], ranks[1]["accumulated"][0]):
        assert torch.equal(a, b)  # the ranks agree: the final micro-batch's reduce averaged the summed gradients


# --------------------------------------------------------------------------------------- a fold group under --nproc


@slow
def test_fold_group_under_nproc_trains_each_fold_on_two_ranks_and_resumes_a_stopped_fold(tiny_cifar, tmp_path):
    """`train --folds 2 --nproc 2`, killed (launcher and ranks) after fold 1's first epoch, then `--resume GROUP
    --nproc 2`: the stopped fold goes on from its last.pt, fold 2 trains, each on two ranks; rank 0 alone writes
    the OOF and CV and reports them."""
    from helpers import FOLD_ARGS

    from kaggle_kit.records.group_folder import FoldGroup

    out = tmp_path / "group"
    args = [*FOLD_ARGS[:1], "6", *FOLD_ARGS[2:]]  # --epochs 6: the kill lands inside fold 1
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["train", "cifar10", "--data-dir", str(tiny_cifar), "--folds", "2", "--nproc", "2", "--out", str(out)]
    launcher = subprocess.Popen(
        [*KAGGLE_KIT, *command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    history = out / "fold-1" / "history.csv"
    while not (history.is_file() and len(history.read_text().splitlines()) > 1):
        assert launcher.poll() is None, launcher.communicate()
        time.sleep(0.02)
    os.killpg(launcher.pid, signal.SIGKILL)  # every process at once: nothing gets to save beyond last.pt
    launcher.communicate()
    stopped = RunDir(out / "fold-1").history()
    assert 1 <= len(stopped) < 6 and not (out / "fold-2" / "best.pt").exists() and not (out / "cv.json").exists()

    resumed = _train("--resume", out, "--nproc", "2")
    assert "fold 1/2: resuming" in resumed.stderr and "fold 2/2: training" in resumed.stderr
    assert resumed.stdout.count("OOF accuracy") == 1  # rank 0 alone reports
    for fold in (1, 2):
        run = RunDir(out / f"fold-{fold}")
        assert run.read_config().processes == 2 and run.history()["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_frame_equal(RunDir(out / "fold-1").history().iloc[: len(stopped)], stopped)
    group = FoldGroup(out)
    assert group.cv()["folds"] == 2 and len(group.oof().ids) == 90
    group_files = {"folds.json", "fold-1", "fold-2", "oof_predictions.npz", "cv.json", "cv.md"}
    assert {p.name for p in out.iterdir()} == group_files  # no second copy, no leftover temporary file
