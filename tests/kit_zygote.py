"""A process that imports torch and kaggle-kit once, then forks one child per command it is sent (the fault sweep
runs hundreds of commands: each fresh `python -m kaggle_kit` would spend seconds importing torch).

Protocol, one JSON line per request on stdin: {"cwd", "env", "args", "stdout", "stderr"}. The zygote forks; the
child enters cwd with exactly env, sends its output to the two files and runs `kaggle_kit.cli.main()` as
`python -m kaggle_kit ARGS` would (its own argv, its own exit status; a crash point's `os._exit` and a SIGKILL
end it as they would end a fresh process). The zygote answers the child's pid on one line, then its exit status
(negative: the signal that ended it) on the next. The zygote itself runs no command; the libraries it imported
may hold idle threads, which a fork does not copy: a child that ever hung on a lock one of them held would be
killed at the sweep's timeout and its moment reported as not survived. Started by tests/fault_sweep.py
(`Zygote`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

LIBRARIES = (
    "sklearn",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.linear_model",
    "scipy.stats",
    "scipy.optimize",
    "timm",
    "pandas",
    "PIL.Image",
    "optuna",
    "onnxruntime",
    "iterstrat.ml_stratifiers",
    "kagglesdk",
)


def preload() -> None:
    """Everything a command imports, imported before any fork (the children share it, copy-on-write)."""
    import importlib
    import pkgutil

    import torch  # noqa: F401

    import kaggle_kit
    import kaggle_kit.cli  # noqa: F401

    for info in pkgutil.walk_packages(kaggle_kit.__path__, "kaggle_kit."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional engine that is not installed: its command imports it itself, or fails
            pass
    for name in LIBRARIES:  # what the commands import inside their functions
        try:
            importlib.import_module(name)
        except Exception:
            pass
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure()  # the first figure loads the fonts: once here, not in every child
    figure.add_subplot().plot([0, 1], [0, 1], label="warm")
    figure.savefig(os.devnull, format="png")
    plt.close(figure)


def child(request: dict) -> int:
    """Run one command in this (forked) process; its exit status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(os.devnull)
    # Ctrl-C raises KeyboardInterrupt, as in an interpreter started from a terminal (a zygote started by a runner
    # in the background inherits an ignored SIGINT, and a fork keeps it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["kaggle-kit", *request["args"]]
    from kaggle_kit.cli import main

    try:
        main()
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            return exit.code or 0
        print(exit.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def serve() -> None:
    preload()
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(request)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve()
