"""Child processes that die with the bench, and finding ones that did not.

A helper process (tcpdump, ssh, the twin) runs in its own session so a Ctrl-C meant for the
bench does not reach it; without more, a ``kill -9`` of the bench would leave it running for
ever. :func:`die_with_parent` arms Linux's parent-death signal in the child, and a pid file
beside the child's output lets the next run find one that survived (an older version, a
process that changed its user and so lost the signal).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from harness.files import atomic_write_text

_PR_SET_PDEATHSIG = 1
# Resolved once here: the child must not load libraries between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child receives ``signum`` when the thread
    that started it ends (the bench exits or is killed, even by SIGKILL). Works together with
    ``start_new_session``/``process_group``. None where the system has no such signal.

    Start the child from a thread that lives as long as the child should (e.g. the main thread).
    A child that changes its user (tcpdump ``-Z`` to another user) loses the signal; its pid
    file (:func:`write_pid_file`) still lets the next run find it.
    """
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signum)

    return arm


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when it does not run."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has finished


def write_pid_file(path: Path, pid: int) -> None:
    """Record ``pid`` (with its start time, so a reused pid is never mistaken for it) in ``path``."""
    atomic_write_text(path, f"{pid} {_start_time(pid) or 0}\n")


def running_from_pid_file(path: Path) -> int | None:
    """The pid recorded in ``path`` if that very process still runs, else None."""
    try:
        pid_text, started = path.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _start_time(pid) == started else None


def command_line(pid: int) -> str:
    """The command line of ``pid`` as one line (for messages), or ``?``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or "?"
