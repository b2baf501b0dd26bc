"""The host's clock: wall/monotonic pairs, steps of the wall clock, and its sync status.

A step (someone set the clock, or NTP stepped it) shows as a jump of ``wall - monotonic``
between two samples; slewing changes it by at most 0.5 ms/s, far below the threshold.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

from harness.rundir.manifest import ClockStatus

STEP_THRESHOLD_NS = 50_000_000


@dataclass(frozen=True)
class ClockPair:
    wall_ns: int
    mono_ns: int

    @property
    def offset_ns(self) -> int:
        return self.wall_ns - self.mono_ns


def clock_pair() -> ClockPair:
    """Read both clocks back to back (monotonic first, wall second, as in every event)."""
    mono = time.monotonic_ns()
    return ClockPair(wall_ns=time.time_ns(), mono_ns=mono)


def step_between(before: ClockPair, after: ClockPair, threshold_ns: int = STEP_THRESHOLD_NS) -> int | None:
    """How far the wall clock stepped between two pairs, or None when within the threshold."""
    step = after.offset_ns - before.offset_ns
    return step if abs(step) > threshold_ns else None


def clock_status(timeout_s: float = 2.0) -> ClockStatus:
    """Ask chrony, then timedatectl; ``source="unknown"`` when neither answers."""
    chrony = _run(["chronyc", "-n", "tracking"], timeout_s)
    if chrony:
        detail = _colon_pairs(chrony)
        leap = detail.get("Leap status", "")
        return ClockStatus(source="chrony", synchronized=leap == "Normal" if leap else None, detail=detail)
    timedatectl = _run(["timedatectl", "show"], timeout_s)
    if timedatectl:
        detail = dict(line.split("=", 1) for line in timedatectl.splitlines() if "=" in line)
        synced = detail.get("NTPSynchronized")
        return ClockStatus(
            source="timedatectl", synchronized=None if synced is None else synced == "yes", detail=detail
        )
    return ClockStatus(source="unknown")


def _run(argv: list[str], timeout_s: float) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.strip() else None


def _colon_pairs(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}
