"""`--ray ADDRESS`: the jobs of a multi-job command (a fold, an experiment's cell x seed, a tune trial) as Ray tasks.

Ray does the scheduling (Ray's own resources: one GPU a task where the cluster has GPUs, otherwise the CPUs its
torch threads use), the placement on whatever machines the cluster has, and the retries of a task whose process
died (`max_retries`, which covers a lost worker or node, and `retry_exceptions=[JobDied]`, which covers the
`kaggle-kit` process a task runs being killed). kaggle-kit adds only what Ray cannot know: a retried job resumes
its run folder from `last.pt` (exact resume) rather than starting again.

Run folders and logs are written by the task, at the path the driver gives it: the runs root must be the same
path on every machine of the cluster (a local cluster, or a shared filesystem such as NFS); nothing is copied back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import KitError

INSTALL = "pip install 'kaggle-kit[ray]' (or: pip install ray)"
RETRIES = 2  # a job killed twice more is not bad luck: its error stands
# exit codes that are answers, not deaths: 0, a kaggle-kit error (1, 2), Ctrl-C or SIGTERM (130, 143)
_INTERRUPTED = (130, 143, -signal.SIGINT, -signal.SIGTERM)


class JobDied(Exception):
    """A task's `kaggle-kit` process was killed (SIGKILL from the out-of-memory killer, a crash): Ray retries it."""


@dataclass(frozen=True)
class Job:
    """One `kaggle-kit` command for a Ray task. `resume` is the command that continues it from `run/last.pt`, used
    instead of `argv` when an earlier attempt left a checkpoint there (None: `argv` resumes by itself). `cwd`: the
    driver's folder, where relative paths in `argv` point (the same path on every machine of the cluster)."""

    argv: list[str]
    log: Path
    resume: list[str] | None = None
    run: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = field(default_factory=os.getcwd)

    def command(self) -> list[str]:
        if self.resume is not None and self.run is not None and (Path(self.run) / "last.pt").is_file():
            return self.resume
        return self.argv


def connect(address: str):
    """Ray, joined to the cluster at `address` (`auto`: the one started on this machine by `ray start`; `local`: a
    new one in this process). One line naming the fix when Ray is missing or no cluster answers."""
    try:
        import ray
    except ImportError:
        raise KitError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    if ray.is_initialized():
        return ray
    try:
        ray.init(
            # "local" is Ray's own word for a new cluster; None would join the cluster `ray start` left on this
            # machine (or $RAY_ADDRESS's), which is what `auto` is for
            address=address,
            include_dashboard=False,
            log_to_driver=False,  # each job's output is in its log file: side by side they would interleave
            configure_logging=False,
            # Ray starts its workers at nice 15 by default: on a cluster started here the jobs are the work, and
            # at nice 15 any other process on the machine starves them (tests measured minutes instead of seconds)
            **({"_system_config": {"worker_niceness": 0}} if address == "local" else {}),
        )
    except Exception as error:  # Ray raises bare Exception too (a node that timed out starting): all one line
        raise KitError(
            f"--ray {address}: no Ray cluster answered ({_first_line(error)}); start one with `ray start --head` "
            "(or give --ray local to start one in this process)"
        ) from None
    return ray


def threads() -> int:
    """The CPUs a job's torch uses, pinned alike on every machine (OMP_NUM_THREADS: Ray sets 1 in its workers)."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))


def resources(ray) -> dict[str, float]:
    """What one job asks Ray for: a GPU where the cluster has one, otherwise the CPUs its torch threads use."""
    cluster = ray.cluster_resources()
    if cluster.get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": min(threads(), max(1, int(cluster.get("CPU", 1))))}


def slots(ray) -> int:
    """How many jobs the cluster runs at once, from what each one asks for."""
    cluster, asked = ray.cluster_resources(), resources(ray)
    if "num_gpus" in asked:
        return max(1, int(cluster["GPU"]))
    return max(1, int(cluster.get("CPU", 1) // asked["num_cpus"]))


def job_env() -> dict[str, str]:
    """The environment each job's process gets on top of its worker's: threads pinned as on the driver (so a Ray
    run trains bit for bit as a local one), and this checkout importable where the driver runs from one."""
    env = {"OMP_NUM_THREADS": str(threads()), "PYTHONUNBUFFERED": "1", "KAGGLE_KIT_PROGRESS": "1"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def run_job(job: Job) -> int:
    """In a Ray task: the job's `kaggle-kit` process, its output appended to its log; its exit code, or JobDied
    (for Ray to retry) when a signal other than an interrupt killed it."""
    command = [sys.executable, "-m", "kaggle_kit", *job.command()]
    log = Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    where = os.environ.get("CUDA_VISIBLE_DEVICES") or "no GPU"
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} Ray task on {os.uname().nodename} ({where}): ")
        out.write(" ".join(command) + "\n")
        out.flush()
        process = subprocess.Popen(
            command,
            env={**os.environ, **job.env},
            cwd=job.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        code = process.wait()
    if code < 0 and code not in _INTERRUPTED:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"=== killed by {signal.Signals(-code).name}: Ray retries the task, resuming its last.pt\n")
        raise JobDied(f"{' '.join(job.argv[:2])} was killed by signal {-code}")
    return code


def _die_with_parent() -> None:
    """The job's process ends with its Ray worker (a worker lost to Ray is retried elsewhere: the process must not
    go on writing the run folder). Linux only (prctl)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


def submit(ray, jobs: list[Job]) -> list:
    """The jobs as Ray tasks (references to their exit codes), each retried from its last.pt if its process dies."""
    task = ray.remote(run_job).options(max_retries=RETRIES, retry_exceptions=[JobDied], **resources(ray))
    return [task.remote(job) for job in jobs]


def wait_codes(ray, refs: list) -> list[int]:
    """The jobs' exit codes in order; a job that died every time it was tried reads as killed (-9). Ctrl-C cancels
    the tasks (their processes get SIGINT: they save and say how to resume) and is raised on."""
    try:
        codes = []
        for ref in refs:
            try:
                codes.append(int(ray.get(ref)))
            except ray.exceptions.RayTaskError as error:
                if not isinstance(error.cause, JobDied):  # the task itself failed (its log unwritable, say)
                    raise KitError(f"a Ray task failed: {_first_line(error.cause)}") from None
                codes.append(-int(signal.SIGKILL))  # killed on every try: `how_it_ended` says so
            except ray.exceptions.RayError:  # its worker or machine was lost on every try
                codes.append(-int(signal.SIGKILL))
        return codes
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref)
        raise


def run_on_ray(ray, jobs: list[Job]) -> list[int]:
    """`launch.run_on_gpus` on a Ray cluster: every job at once as a Ray task; their exit codes in order."""
    return wait_codes(ray, submit(ray, jobs))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
