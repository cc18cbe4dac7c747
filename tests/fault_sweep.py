"""The fault sweep over commands that write: each fault at a chosen moment of a real command (a child process),
then the checks that say it survived. Used by tests/test_command_faults.py (the CI subset) and
benchmarks/bench_faults.py (the full sweep), which also writes the table in docs/faults.md.

Fault classes, and what "survived" means for each:
- crash: the n-th kept write ends the process abruptly (os._exit) half-way through (core.faults); every kept
  file is whole, and the rerun (or the resume) ends with the undisturbed run's files.
- full disk: the n-th kept write fails with ENOSPC; the command fails in one line naming the folder and the
  space needed, every kept file is whole, and the next run (space freed) ends with the undisturbed run's files.
- kill: SIGKILL at a seeded random moment of the command's run time; as for crash.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kaggle_kit.core import faults

REPO = Path(__file__).resolve().parents[1]
CLASSES = {
    "crash": "every kept file whole; the rerun or resume ends with the undisturbed run's files",
    "full disk": "one line naming the folder and the space needed; every kept file whole; the next run succeeds",
    "kill": "SIGKILL at a seeded random moment; every kept file whole; the rerun ends with the undisturbed files",
}


@dataclass
class Command:
    """A command that writes: how to make its starting folder, its arguments, and which files must come out equal."""

    name: str
    prepare: Callable[[Path], None]
    args: list[str]
    same: tuple[str, ...]  # globs (under the working folder) of files equal to the undisturbed run's after a fault
    rerun: Callable[[Path], list[str]] | None = None  # the command after a fault (default: `args` again)
    present: tuple[str, ...] = ()  # globs of files that must exist after the rerun (not compared: they hold times)
    env: dict | Callable[[], dict] = field(default_factory=dict)  # more environment (or what makes it) for every run
    check: Callable[[Path], str] | None = None  # what else must hold after the rerun: "" or what went wrong


@dataclass
class Outcome:
    command: str
    fault: str
    moment: str
    survived: bool
    detail: str = ""


@dataclass
class Sweep:
    """One command's undisturbed run (its writes, files and duration), then faults against it."""

    command: Command
    root: Path
    writes: list[str] = field(default_factory=list)
    reference: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def env(self) -> dict:
        return self.command.env() if callable(self.command.env) else self.command.env

    def fresh(self, label: str) -> Path:
        work = self.root / label
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self.command.prepare(work)
        return work

    def undisturbed(self) -> Sweep:
        work = self.fresh("undisturbed")
        log = work.parent / "undisturbed-writes.log"
        log.unlink(missing_ok=True)
        started = time.monotonic()
        proc = run_kit(work, self.command.args, {**self.env(), faults.LOG_ENV: str(log)})
        self.seconds = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        self.writes = log.read_text().splitlines()
        self.reference = {rel: comparable(work / rel) for rel in matching(work, self.command.same)}
        assert self.reference or not self.command.same, f"{self.command.name}: no file matches {self.command.same}"
        return self

    def crash(self, number: int, phase: str = "partial") -> Outcome:
        work = self.fresh(f"crash-{number}-{phase}")
        proc = run_kit(work, self.command.args, {**self.env(), faults.CRASH_ENV: f"{number}:{phase}"})
        moment = f"write {number} ({self.writes[number - 1].split(chr(9))[1]}), {phase}"
        if proc.returncode != faults.CRASH_EXIT:
            return Outcome(self.command.name, "crash", moment, False, f"exit {proc.returncode}: {proc.stderr[-300:]}")
        return self._after_fault(work, "crash", moment)

    def full_disk(self, number: int) -> Outcome:
        work = self.fresh(f"enospc-{number}")
        target = self.target(number, work)
        # the version before the failed write is the one the command started with, unless it wrote the file earlier
        earlier = any(self.target(n, work) == target for n in range(1, number))
        before = target.read_bytes() if target and target.is_file() and not earlier else None
        proc = run_kit(work, self.command.args, {**self.env(), faults.ENOSPC_ENV: str(number)})
        moment = f"write {number} ({self.writes[number - 1].split(chr(9))[1]})"
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        said = lines[-1] if lines else ""
        if proc.returncode in (0, faults.CRASH_EXIT) or "no space left in" not in said or "Traceback" in proc.stderr:
            return Outcome(self.command.name, "full disk", moment, False, f"exit {proc.returncode}: {said[:300]}")
        if before is not None and (not target.is_file() or target.read_bytes() != before):
            lost = f"{target.relative_to(work)} lost its previous version though its write failed"
            return Outcome(self.command.name, "full disk", moment, False, lost)
        return self._after_fault(work, "full disk", moment)

    def target(self, number: int, work: Path) -> Path | None:
        """The kept file the n-th write puts in place, in `work` (None for a hidden staging file)."""
        path = Path(self.writes[number - 1].split("\t")[2])
        if path.is_absolute():
            try:
                path = path.relative_to(self.root / "undisturbed")
            except ValueError:
                return None
        if path.name.startswith(".") or any(part.startswith(".") for part in path.parts):
            return None
        return work / path

    def kill(self, rng: random.Random) -> Outcome:
        at = rng.uniform(0.05, 0.95) * self.seconds
        work = self.fresh(f"kill-{at:.2f}")
        child = start_kit(work, self.command.args, self.env())
        time.sleep(at)
        child.kill()
        child.wait()
        return self._after_fault(work, "kill", f"{at:.1f} s of {self.seconds:.1f} s")

    def _after_fault(self, work: Path, fault: str, moment: str) -> Outcome:
        torn = [str(p.relative_to(work)) for p in kept(work) if not whole(p)]
        if torn:
            return Outcome(self.command.name, fault, moment, False, f"half-written: {torn}")
        args = self.command.rerun(work) if self.command.rerun else self.command.args
        proc = run_kit(work, args, self.env())
        if proc.returncode != 0:
            return Outcome(
                self.command.name, fault, moment, False, f"rerun exit {proc.returncode}: {proc.stderr[-300:]}"
            )
        after = {rel: comparable(work / rel) for rel in matching(work, self.command.same)}
        differ = sorted(rel for rel in set(after) | set(self.reference) if after.get(rel) != self.reference.get(rel))
        missing = [g for g in self.command.present if not matching(work, (g,))]
        torn = [str(p.relative_to(work)) for p in kept(work) if not whole(p)]
        wrong = self.command.check(work) if self.command.check else ""
        detail = "; ".join(
            text
            for text in (
                f"differ from undisturbed: {differ}" if differ else "",
                f"missing after the rerun: {missing}" if missing else "",
                f"half-written after the rerun: {torn}" if torn else "",
                wrong,
            )
            if text
        )
        if not detail:  # a survived moment's folder is not needed again (the full sweep runs hundreds)
            shutil.rmtree(work, ignore_errors=True)
        return Outcome(self.command.name, fault, moment, not detail, detail)


def child_env(work: Path, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_KIT_")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", KAGGLE_KIT_SUBMISSIONS_DIR=str(work / "submissions"))
    env.update(KAGGLE_KIT_PROGRESS="0", NO_ALBUMENTATIONS_UPDATE="1")
    env.update(extra)
    return env


class Zygote:
    """tests/kit_zygote.py: one process that imported torch and kaggle-kit, forking a child per command (a fresh
    interpreter per command would spend most of the sweep importing torch)."""

    def __init__(self) -> None:
        env = child_env(REPO, {})
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "kit_zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert self.process.stdout.readline().strip() == "ready", "tests/kit_zygote.py did not start"

    def start(self, work: Path, args: list[str], extra: dict) -> Child:
        return self.launch(work, child_env(work, extra), args)

    def launch(self, cwd: Path, env: dict, args: list) -> Child:
        """Run `kaggle-kit ARGS` in cwd with exactly env, as `python -m kaggle_kit ARGS` would."""
        logs = cwd.parent / f".{cwd.name}-{time.monotonic_ns()}"
        request = {
            "cwd": str(cwd),
            "env": env,
            "args": [str(a) for a in args],
            "stdout": f"{logs}.out",
            "stderr": f"{logs}.err",
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return Child(self, int(self.process.stdout.readline()), Path(f"{logs}.out"), Path(f"{logs}.err"), args)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@dataclass
class Child:
    """One command forked by the zygote."""

    zygote: Zygote
    pid: int
    stdout: Path
    stderr: Path
    args: list
    ended: bool = False

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *failure) -> None:
        """A check that failed while the command ran: the command ends here, and the zygote answers its status,
        so the worker's next command reads its own pid and status, not this one's."""
        if not self.ended:
            self.kill()
            self.wait()

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, number: int) -> None:
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:  # it had ended
            pass

    @staticmethod
    def said(path: Path) -> str:
        """What the command wrote there so far (nothing before the forked child has opened its files)."""
        return path.read_text(errors="replace") if path.is_file() else ""

    def running(self) -> bool:
        """Whether the command goes on: the zygote has not yet answered its exit status."""
        return not self.ended and not select.select([self.zygote.process.stdout], [], [], 0)[0]

    def wait(self, timeout: float = 600, raise_on_timeout: bool = False) -> subprocess.CompletedProcess:
        ready, _, _ = select.select([self.zygote.process.stdout], [], [], timeout)
        if not ready:
            self.kill()
        code = int(self.zygote.process.stdout.readline())
        self.ended = True
        if not ready and raise_on_timeout:
            raise subprocess.TimeoutExpired(["kaggle-kit", *self.args], timeout)
        out, err = (self.said(path) for path in (self.stdout, self.stderr))
        for path in (self.stdout, self.stderr):
            path.unlink(missing_ok=True)
        return subprocess.CompletedProcess(["kaggle-kit", *self.args], code, out, err)


_ZYGOTE: list[Zygote] = []


def zygote() -> Zygote:
    if not _ZYGOTE:
        _ZYGOTE.append(Zygote())
        atexit.register(_ZYGOTE[0].close)
    return _ZYGOTE[0]


def run_kit(work: Path, args: list[str], extra: dict) -> subprocess.CompletedProcess:
    return zygote().start(work, args, extra).wait()


def start_kit(work: Path, args: list[str], extra: dict | None = None) -> Child:
    return zygote().start(work, args, extra or {})


def matching(work: Path, globs: tuple[str, ...]) -> list[str]:
    return sorted({str(p.relative_to(work)) for g in globs for p in work.glob(g) if p.is_file()})


def kept(work: Path) -> list[Path]:
    """Every file a user keeps: not hidden, not inside a hidden folder (temporary files and caches are hidden)."""
    return [p for p in work.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts[-8:])]


def whole(path: Path) -> bool:
    """Whether a kept file reads back complete in its format."""
    try:
        data = path.read_bytes()
        suffix = path.suffix
        if suffix in (".json",):
            json.loads(data)
        elif suffix == ".jsonl":
            # an append log: every finished line parses; a torn last line (a power cut mid-append) is skipped by
            # its readers and set aside by its next writer (submissions/ledger.py), never read as a record
            finished = data[: data.rfind(b"\n") + 1]
            return all(isinstance(json.loads(x), dict) for x in finished.splitlines() if x.strip())
        elif suffix in (".csv", ".md", ".txt", ".yaml", ".toml"):
            data.decode("utf-8")
            return data == b"" or data.endswith(b"\n")
        elif suffix in (".npz", ".pt", ".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return zf.testzip() is None
        elif suffix == ".png":
            return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    except (ValueError, zipfile.BadZipFile, UnicodeDecodeError):
        return False
    return True


def comparable(path: Path) -> object:
    """A file's content as compared after a fault: bytes, or for an .npz its arrays (a zip's entry times differ)."""
    if path.suffix == ".npz":
        import numpy as np

        with np.load(path) as arrays:
            return {name: arrays[name].tobytes() for name in sorted(arrays.files)}
    return path.read_bytes()


def table(outcomes: list[Outcome]) -> str:
    """The docs/faults.md table: per fault class, moments injected and survived, and what survived means."""
    rows = ["| fault | commands | moments injected | survived | survived means |", "|---|---|---|---|---|"]
    for fault, meaning in CLASSES.items():
        mine = [o for o in outcomes if o.fault == fault]
        commands = ", ".join(sorted({o.command for o in mine})) or "-"
        rows.append(f"| {fault} | {commands} | {len(mine)} | {sum(o.survived for o in mine)} | {meaning} |")
    return "\n".join(rows) + "\n"
