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
from collections.abc import Sequence
from typing import NoReturn

from harness import __version__
from harness.cli.console import error_line
from harness.errors import HarnessError

# One module per stage, in pipeline order (the order of `harness --help`), with the commands it adds.
COMMAND_MODULES = {
    "harness.cli.script_cmd": ("validate", "schema"),
    "harness.cli.speech_cmd": ("synth", "voices", "plan"),
    "harness.cli.audio_cmd": ("lab", "devices"),
    "harness.cli.bench_cmd": ("run",),
    "harness.cli.net_cmd": ("net",),
    "harness.cli.correlate_cmd": ("activations", "correlate", "report"),
    "harness.cli.crawl_cmd": ("crawl",),
    "harness.cli.ads_cmd": ("ads",),
    "harness.cli.twin_cmd": ("twin", "demo"),
    "harness.cli.campaign_cmd": ("campaign",),
}
# A full or read-only disk behind a shell redirection: one line, not a traceback.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. Given the arguments, it holds only the command they name
    (building all of them costs 40 ms of every run); all when they name none or an unknown one,
    so that the help and the usage error list every command."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="A lab bench for smart-speaker privacy research: author persona scripts, "
        "speak them to an Echo with exact timing, capture and attribute its traffic, compare ads.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    # the command is the first word; a -h before it asks for the help of them all
    word = next((a for a in argv or () if not a.startswith("-") or a in ("-h", "--help")), None)
    modules = [m for m, commands in COMMAND_MODULES.items() if word in commands] or list(COMMAND_MODULES)
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 bad input, 2 usage)."""
    argv = sys.argv[1:] if argv is None else argv
    return _run(build_parser(argv).parse_args(argv))


def entry() -> NoReturn:
    """The ``harness`` command. A command that sets ``quick_exit`` ends its process as soon as
    its output is flushed and the exit handlers have run: tearing down the interpreter (its
    modules, large tables) took 0.12 s of `harness net`'s run, and nothing is left to do by then."""
    # numpy's OpenBLAS starts a thread per core on import that spins ~0.1 s of CPU before it
    # sleeps, taking a core from the processes reading captures; no command does linear algebra
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = build_parser(sys.argv[1:]).parse_args()
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
