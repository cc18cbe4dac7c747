"""Helpers the tests import: the CLI run in a child process, its one-line errors, shared flag lists."""

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


KAGGLE_KIT = [sys.executable, "-m", "kaggle_kit"]
# progress lines are on by default (stderr); tests read stderr for the one line they check, so the helpers turn
# them off unless a test's env asks for them (KAGGLE_KIT_PROGRESS=1) - tests/core/test_progress.py runs the default
QUIET_BY_DEFAULT = {"KAGGLE_KIT_PROGRESS": "0"}


TINY_CPU_ARGS = [
    *("--arch", "test_resnet", "--img-size", "32", "--batch-size", "32"),
    *("--workers", "0", "--device", "cpu", "--aug", "none"),
]


CIFAR_RUN_ARGS = [
    "--epochs",
    "4",
    "--arch",
    "test_resnet",
    "--stem",
    "imagenet",
    "--batch-size",
    "32",
    "--lr",
    "0.05",
    "--schedule",
    "cosine",
    "--aug",
    "none",
    "--workers",
    "0",
    "--seed",
    "7",
    "--tta",
    "off",
]


def ctrl_c_reaches_it() -> None:
    """`preexec_fn` of a child the test will Ctrl-C: a runner started in the background by a shell without job
    control ignores SIGINT, and its children inherit that (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CliResult(subprocess.CompletedProcess):
    """What `run_cli` returns: a CompletedProcess's returncode, stdout and stderr, from a call in this process."""


def run_cli(
    *args, cwd: Path | None = None, env: dict | None = None, replace_env: bool = False, timeout: int = 600
) -> subprocess.CompletedProcess:
    """`kaggle-kit ARGS` called in this process (no second torch import): exit code, stdout and stderr as a user
    sees them. `env` is laid over os.environ (or replaces it, `replace_env`; a None value unsets the variable;
    progress is off unless `env` says otherwise) and `cwd` is entered for the call
    only; stdin, stdout and stderr are not terminals. A traceback (a bug) comes back on stderr with exit code 1,
    as from a child. `timeout` is accepted for the child's signature and not enforced. Use `run_cli_process`
    where a signal, a real exit status, the launcher (--nproc) or a fresh interpreter is what is tested."""
    import contextlib
    import gc
    import io
    import traceback

    import torch

    from kaggle_kit.cli import main
    from kaggle_kit.core import progress

    argv = [str(arg) for arg in args]
    gc.collect()  # what earlier tests left for the collector warns now, not into this command's stderr
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_threads, saved_progress = torch.get_num_threads(), progress.enabled()
    saved_filters, saved_stdin = list(warnings.filters), sys.stdin
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    try:
        if replace_env:
            os.environ.clear()
        os.environ.update(QUIET_BY_DEFAULT)
        os.environ.update({key: str(value) for key, value in (env or {}).items() if value is not None})
        for key in [key for key, value in (env or {}).items() if value is None]:  # None: unset, as a user's shell
            del os.environ[key]
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(argv)
            except SystemExit as exit:
                if exit.code is None or isinstance(exit.code, int):
                    code = exit.code or 0
                else:  # `sys.exit("message")`: the message on stderr and status 1, as the interpreter does
                    print(exit.code, file=sys.stderr)
                    code = 1
            except Exception:  # a bug: the interpreter would print the traceback and exit 1
                traceback.print_exc(file=sys.stderr)
                code = 1
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(saved_threads)
        progress.enable(saved_progress)
        warnings.filters[:] = saved_filters
    return CliResult(["kaggle-kit", *argv], code, stdout.getvalue(), stderr.getvalue())


def run_cli_process(
    *args, cwd: Path | None = None, env: dict | None = None, replace_env: bool = False, timeout: int = 600, **popen
) -> subprocess.CompletedProcess:
    """The real entry point in a child process (`python -m kaggle_kit`): for what only a process shows: signals,
    exit status, resource limits (`preexec_fn`), the launcher, import side effects."""
    full_env = {**({} if replace_env else os.environ), **QUIET_BY_DEFAULT, "PYTHONPATH": str(REPO), **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}  # None: unset
    return subprocess.run(
        [*KAGGLE_KIT, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout, **popen
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess, *needles: str, alone: bool = False, multiline: bool = False
) -> str:
    """A failed command that says why in one `error:` line, without a traceback; the line holds every needle.
    `alone`: stderr holds nothing but that line. `multiline`: stderr starts with it and the needles may be in the
    lines after it. Returns the text searched."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    if alone or multiline:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and lines[0].startswith("error: "), result.stderr
        assert multiline or len(lines) == 1, result.stderr
        text = "\n".join(lines) if multiline else lines[0]
    else:
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, result.stderr
        text = lines[0]
    for needle in needles:
        assert needle in text, text
    return text


FOLD_ARGS = [
    "--epochs",
    "2",
    "--arch",
    "test_resnet",
    "--batch-size",
    "16",
    "--lr",
    "0.05",
    "--aug",
    "none",
    "--workers",
    "0",
    "--seed",
    "3",
    "--tta",
    "off",
    "--device",
    "cpu",
]
