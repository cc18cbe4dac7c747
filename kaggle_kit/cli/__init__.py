"""The `kaggle-kit` command: a thin typer shell over library calls.

Each module here registers its commands on `app`; every one parses flags, calls one library
function and prints the result. `main` turns `KitError` into one line on stderr and an exit code.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

from ..core.errors import KitError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

app = typer.Typer(
    name="kaggle-kit",
    help="Train, predict and submit for Kaggle image-classification competitions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _register_commands() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register:
            register(app)


_register_commands()


def _finish_without_interruption() -> None:
    """From here the command only reports and exits: a stop request arriving now (the launcher's SIGTERM to the
    surviving ranks of a run that lost one, a second Ctrl-C) must not turn the one-line report into a traceback."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fail(message: str, exit_code: int = 2, kind: str = "error") -> None:
    _finish_without_interruption()
    from ..core.launch import report_to_launcher

    # a worker of `train --nproc` hands its error to the launcher, which prints the run's one error line; a stop
    # is said by each worker itself (rank 0's reaches the terminal, the others' their logs): the launcher, stopped
    # by the same signal, reads no reports
    if not report_to_launcher(message, kind) or kind == "interrupted":
        print(f"error: {message}", file=sys.stderr)
    raise SystemExit(exit_code)


def main(argv: list[str] | None = None) -> None:
    """The command line. `argv` None: this process's own arguments, and the process ends with the command.
    A list: called from Python (tests, a notebook), so the caller's signal handlers are put back afterwards."""
    from ..core.invocation import set_arguments

    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    outer = set_arguments(argv)
    try:
        _main(argv)
    finally:
        set_arguments(outer)
        if argv is not None:
            for number, handler in saved.items():
                signal.signal(number, handler)


def _main(argv: list[str] | None) -> None:
    from ..core import progress

    progress.enable(progress.wanted())  # commands with --quiet turn it off
    # a notebook or cluster stopping us sends SIGTERM: treat it as Ctrl-C so training saves and says how to resume
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        # outside standalone mode typer turns a Ctrl-C (and an explicit typer.Exit) into a returned exit code
        # instead of raising: dropping it would end an interrupted download or submit silently with status 0
        exit_code = app(args=argv, prog_name="kaggle-kit", standalone_mode=False)
        if exit_code == 130:
            raise KeyboardInterrupt
        if isinstance(exit_code, int) and exit_code:
            raise SystemExit(exit_code)
    except KitError as error:
        fail(str(error).splitlines()[0] if str(error) else type(error).__name__, error.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130, kind="interrupted")
    except OSError as error:
        # disk full, permission denied, read-only folder: the file and the reason, in one line
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        fail(f"{error.strerror or error}{where}: check free space and write permission there", 1)
    except typer.Abort:
        fail("aborted", 130)
    except typer.TyperException as error:  # usage errors: bad flag values, missing arguments
        if type(error).__name__ == "NoArgsIsHelpError":  # a bare `kaggle-kit`: the help, not an error
            print(error.format_message())
            return
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        command = getattr(getattr(error, "ctx", None), "command_path", "kaggle-kit")
        fail(f"{message} (see `{command} --help`)", getattr(error, "exit_code", 2))
    except Exception as error:
        _finish_without_interruption()
        from ..core.distributed import lost_peer_message
        from ..core.errors import out_of_memory
        from ..core.launch import report_to_launcher

        lost = lost_peer_message(error)  # another rank of a distributed run died: say so, not a traceback
        if lost:
            fail(lost, 1, kind="lost_peer")
        memory = out_of_memory(error)  # training says more itself; this is prediction, calibration, features
        if memory:
            fail(f"{memory}: lower --batch-size (or --img-size), or free the memory other processes hold", 1)
        report_to_launcher(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}", "crash")
        raise  # a bug: the traceback
