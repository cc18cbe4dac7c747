"""More than one process: `kaggle-kit train --nproc N` and `kaggle-kit experiment --gpus 0,1,...`.

`launch(argv, nproc)` starts N copies of `kaggle-kit <argv>` on this machine through torch.distributed's
elastic agent, the machinery behind `torchrun --standalone` (c10d rendezvous on localhost, no restarts).
Each worker finds RANK / WORLD_SIZE / MASTER_ADDR in its environment (distributed.init_from_env), exactly
as under `torchrun --nnodes ... -m kaggle_kit train ...` on several machines, so both take one code path.
The agent watches the workers: when one fails, it stops the others, and `launch` prints one line naming
the rank that failed first, why, and how to go on. Workers report their own failures through the agent's
error files rather than the terminal (`report_to_launcher`), so a failure reads as one line, not N.

`run_on_gpus(jobs, gpus)` runs independent `kaggle-kit` commands side by side, one per GPU at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import KitError

KAGGLE_KIT = [sys.executable, "-m", "kaggle_kit"]

# Set by `launch` in its workers' environment: the launcher prints the run's one error line, so a worker
# writes its failure to the agent's error file (TORCHELASTIC_ERROR_FILE) instead of the terminal.
REPORT_TO_LAUNCHER = "KAGGLE_KIT_REPORT_TO_LAUNCHER"

# How long a worker that lost its peers gets to exit on its own (SIGTERM) before the agent kills it. Its
# collectives fail at once on gloo, but an NCCL collective would wait for the process-group timeout.
SHUTDOWN_GRACE_S = 10

# Kinds of worker failure, in the order `launch` looks for the cause of a failed run: an error the worker
# explained, then a crash or kill, then the ranks that only stopped because another one failed.
ERROR, CRASH, LOST_PEER, INTERRUPTED = "error", "crash", "lost_peer", "interrupted"

# What usually sends a process SIGKILL, said wherever a launched process died of it.
SIGKILL_CAUSE = "the out-of-memory killer, or a user"
CAUSE_ORDER = {ERROR: 0, CRASH: 1, LOST_PEER: 2, INTERRUPTED: 3}


# --------------------------------------------------------------------------------------- --nproc


def launch(argv: list[str], nproc: int) -> int:
    """Run `kaggle-kit <argv>` (e.g. `["train", "cifar10", "--nproc", "2"]`) as `nproc` DDP workers on this
    machine and wait for them; returns the exit code for the command (0 when every worker succeeded)."""
    if nproc < 1:
        raise KitError(f"--nproc {nproc}: give 1 or more processes")
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _quiet_agent_logs()
    # The ranks other than 0 write to files: rank 0 alone owns the terminal (progress bar, epoch lines).
    log_dir = tempfile.mkdtemp(prefix="kaggle-kit-ranks-")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"kaggle-kit-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # as `torchrun --standalone`: the agent's store takes a free port itself
        max_restarts=0,  # a failed rank ends the run: training restarts from a checkpoint with --resume
        monitor_interval=0.1,
        logs_specs=DefaultLogsSpecs(log_dir=log_dir, redirects={rank: Std.ALL for rank in range(1, nproc)}),
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    environment = {REPORT_TO_LAUNCHER: "1"}
    if "OMP_NUM_THREADS" not in os.environ:
        # N workers each using every core would oversubscribe the CPU; torchrun sets 1, a share is as safe
        environment["OMP_NUM_THREADS"] = str(max(1, _cores() // nproc))
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)  # the agent hands its own environment to the workers
    try:
        elastic_launch(config, sys.executable)("-m", "kaggle_kit", *argv)
    except ChildFailedError as failed:
        rank, failure = first_cause(failed.failures)
        log = next(Path(log_dir).glob(f"*/attempt_*/{failure.local_rank}/stderr.log"), None)
        line, code = describe_failure(rank, failure, nproc, argv, log)
        print(f"error: {line}", file=sys.stderr)
        if log is None or str(log) not in line:
            shutil.rmtree(log_dir, ignore_errors=True)
        return code
    except SignalException:
        # Ctrl-C or SIGTERM reached the agent, which passed it on to the workers: rank 0 has said how to resume.
        # 130 for both, as a single process (which takes SIGTERM for Ctrl-C) exits
        shutil.rmtree(log_dir, ignore_errors=True)
        return 130
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def first_cause(failures: dict) -> tuple[int, object]:
    """(global rank, ProcessFailure) that explains a failed run: by kind (CAUSE_ORDER), then time, then rank.

    The agent's own choice is the earliest timestamp, but timestamps have one-second resolution and a rank
    whose peer was killed fails within milliseconds, so the victim and the survivor often tie."""
    return min(failures.items(), key=lambda item: (CAUSE_ORDER[_kind(item[1])], item[1].timestamp, item[0]))


def describe_failure(rank: int, failure, nproc: int, argv: list[str], log: Path | None = None) -> tuple[str, int]:
    """(the one-line error, the exit code) for the run whose first failure is `failure` at `rank`; `log` is
    that rank's stderr file (None for rank 0, whose output went to the terminal)."""
    reported = _reported(failure)
    code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    again = f"then resume with `kaggle-kit train --resume {_run_folder(argv)} --nproc {nproc}`"
    if reported and reported.get("kind") == ERROR:
        return reported["message"], code  # the worker's KitError already names the problem and the fix
    where = f"its log: {log}" if log is not None and log.is_file() else "its output is above"
    if failure.exitcode < 0:
        name = _signal_name(-failure.exitcode)
        if name == "SIGKILL":
            return (
                f"rank {rank} of {nproc} was killed by SIGKILL (exit code -9: {SIGKILL_CAUSE}), so the others "
                f"were stopped; if memory ran out, lower --batch-size or --nproc, {again}"
            ), code
        return (
            f"rank {rank} of {nproc} was killed by {name} (exit code {failure.exitcode}: a crash in native code, "
            f"or a signal from outside; {where}), so the others were stopped; {again}"
        ), code
    detail = reported["message"] if reported else "no message"
    return (
        f"rank {rank} of {nproc} failed with exit code {failure.exitcode} ({detail}; {where}), so the "
        f"others were stopped; fix the cause, {again}"
    ), code


def die_with_launcher() -> None:
    """In a worker of `launch`: be sent SIGTERM (taken as Ctrl-C: save, say how to resume, exit) when the launcher
    dies, even of SIGKILL, which it cannot pass on; otherwise the workers would train on unseen and race a later
    `--resume` for the run folder. Linux only (prctl); elsewhere a no-op."""
    if not os.environ.get(REPORT_TO_LAUNCHER) or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() == 1:  # the launcher died before the call: the signal will never come
        os.kill(os.getpid(), signal.SIGTERM)


def report_to_launcher(message: str, kind: str = ERROR) -> bool:
    """In a worker of `launch`: record this process's failure for the launcher and return True (the caller
    then exits quietly); elsewhere return False (the caller prints the error itself)."""
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not os.environ.get(REPORT_TO_LAUNCHER) or not error_file:
        return False
    # the layout of torch's ErrorHandler.record_exception, which the agent reads back into ProcessFailure
    record = {
        "message": {
            "message": message,
            "kind": kind,
            "extraInfo": {"py_callstack": "", "timestamp": str(int(time.time()))},
        }
    }
    try:
        Path(error_file).write_text(json.dumps(record))
    except OSError:
        return False
    return True


def _reported(failure) -> dict | None:
    data = failure.error_file_data.get("message") if isinstance(failure.error_file_data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return {"message": data["message"], "kind": data.get("kind", CRASH)}
    return None


def _kind(failure) -> str:
    reported = _reported(failure)
    if reported:
        return reported["kind"] if reported["kind"] in CAUSE_ORDER else CRASH
    if failure.exitcode in (-signal.SIGTERM, -signal.SIGINT, 130, 143):
        return INTERRUPTED  # stopped by the agent after another rank failed
    return CRASH


def _run_folder(argv: list[str]) -> str:
    for flag in ("--resume", "--out"):
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return "RUN_DIR"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _quiet_agent_logs() -> None:
    """The agent logs every step and each worker's exit as warnings on stderr; `launch` says what matters."""
    import logging

    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")) and isinstance(
            logger, logging.Logger
        ):
            logger.setLevel(logging.CRITICAL)


# --------------------------------------------------------------------------------------- --gpus


def run_on_gpus(
    jobs: list[list[str]], gpus: list[str], program: list[str] | None = None, logs: list[Path | None] | None = None
) -> list[int]:
    """Run each job (`kaggle-kit` arguments, e.g. `["train", "cifar10", "--out", "runs/a"]`) as its own
    process, at most one per GPU at a time, with CUDA_VISIBLE_DEVICES set to that GPU (so the job sees it
    as cuda:0). Jobs start in order as GPUs free up; returns their exit codes in job order. A job's output
    (stdout and stderr) is appended to its file in `logs` where one is given - jobs side by side would
    interleave their progress lines in one terminal - and goes to this process's otherwise. `program`
    replaces the `python -m kaggle_kit` prefix."""
    if not gpus:
        raise KitError("no GPU ids to run on; give them as --gpus 0,1")
    if len(set(gpus)) != len(gpus):
        raise KitError(f"GPU ids repeat in {','.join(gpus)}: give each GPU once, e.g. --gpus 0,1")
    logs = list(logs) if logs is not None else [None] * len(jobs)
    if len(logs) != len(jobs):
        raise ValueError(f"{len(logs)} log paths for {len(jobs)} jobs")
    prefix = list(program or KAGGLE_KIT)
    codes: list[int | None] = [None] * len(jobs)
    free = list(gpus)
    running: dict[subprocess.Popen, tuple[int, str]] = {}
    next_job = 0
    try:
        while next_job < len(jobs) or running:
            while free and next_job < len(jobs):
                gpu = free.pop(0)
                running[_start_on_gpu([*prefix, *jobs[next_job]], gpu, logs[next_job])] = (next_job, gpu)
                next_job += 1
            done = _wait_any(list(running))
            for process in done:
                index, gpu = running.pop(process)
                codes[index] = process.returncode
                free.append(gpu)
    except KeyboardInterrupt:
        _stop(list(running))
        raise
    return [int(code) for code in codes]


def _start_on_gpu(command: list[str], gpu: str, log: Path | None) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    if log is None:
        return subprocess.Popen(command, env=env)
    env["PYTHONUNBUFFERED"] = "1"  # the log in the order things happened (an error last), and live for `tail -f`
    env["KAGGLE_KIT_PROGRESS"] = "1"  # progress lines with an ETA and a line per epoch, though no terminal reads it
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:  # the child keeps its own copy of the descriptor
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} on GPU {gpu}: {' '.join(command)}\n")
        out.flush()
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def how_it_ended(code: int, log: Path) -> str:
    """A logged job's failure in a few words: its own last line (a kaggle-kit error), or the signal that killed
    it, which leaves no line of its own."""
    if code < 0:
        name = _signal_name(-code)
        cause = f" ({SIGKILL_CAUSE})" if name == "SIGKILL" else ""
        return f"was killed by {name}{cause}"
    said = (last_line(log) or "no output").removeprefix("error: ")
    return f"exited with code {code}: {said}"


def last_line(log: Path) -> str | None:
    """The last non-empty line of a job's log (a failed kaggle-kit command's one-line error), if any."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return None
    return next((line for line in reversed(lines) if line), None)


def _wait_any(processes: list[subprocess.Popen]) -> list[subprocess.Popen]:
    """The processes that have exited, waiting until at least one has."""
    while True:
        done = [p for p in processes if p.poll() is not None]
        if done:
            return done
        time.sleep(0.05)


def _stop(processes: list[subprocess.Popen], grace_s: float = 15) -> None:
    """Interrupted: a terminal's Ctrl-C reached the jobs too, and they save and exit; stop any that do not."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.terminate()
    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
