"""Entry point of the ``harness`` command.

Each stage's commands live in a module of this package that defines ``register(subparsers)``;
the module adds its parsers and sets ``func`` (``args -> exit status``) on each.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import importlib
import os
import sys
import threading
from typing import NoReturn

from harness import __version__
from harness.cli.console import error_line
from harness.errors import HarnessError

# One module per stage, in pipeline order (the order of `harness --help`).
COMMAND_MODULES = [
    "harness.cli.script_cmd",
    "harness.cli.speech_cmd",
    "harness.cli.audio_cmd",
    "harness.cli.bench_cmd",
    "harness.cli.net_cmd",
    "harness.cli.correlate_cmd",
    "harness.cli.crawl_cmd",
    "harness.cli.ads_cmd",
    "harness.cli.twin_cmd",
    "harness.cli.campaign_cmd",
]
# A full or read-only disk behind a shell redirection: one line, not a traceback.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="A lab bench for smart-speaker privacy research: author persona scripts, "
        "speak them to an Echo with exact timing, capture and attribute its traffic, compare ads.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 bad input, 2 usage)."""
    return _run(build_parser().parse_args(argv))


def entry() -> NoReturn:
    """The ``harness`` command. A command that sets ``quick_exit`` ends its process as soon as
    its output is flushed and the exit handlers have run: tearing down the interpreter (pandas,
    pyarrow, large tables) took 0.12 s of `harness net`'s run, and nothing is left to do by then."""
    args = build_parser().parse_args()
    status = _run(args)
    if getattr(args, "quick_exit", False) and threading.active_count() == 1:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            sys.exit(status)  # let the usual exit report it
        atexit._run_exitfuncs()
        os._exit(status)
    sys.exit(status)


def _run(args: argparse.Namespace) -> int:
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # what is still buffered fails here, not at exit with a traceback
        return status
    except HarnessError as exc:
        error_line(str(exc))
        return 1
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    except BrokenPipeError:
        # `harness ... | head` closed the pipe: not an error worth a traceback.
        sys.stderr.close()
        return 0
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS or exc.filename is not None:
            raise
        # Only the primitives in harness.files write named files, and they raise OutputError.
        error_line(f"standard output: cannot write: {exc.strerror}")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # drop what cannot be written
        return 1


if __name__ == "__main__":
    entry()
