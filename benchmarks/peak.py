"""Peak memory of work in progress, sampled in a thread every 0.1 s (benchmarks only)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil


def tree_rss() -> int:
    """Resident bytes of this process and all its descendants."""
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass  # a child that ended between listing and reading
    return total


class PeakMemory:
    """``with PeakMemory(measure) as m: ...`` leaves in ``m.peak`` the largest ``measure()`` seen
    (bytes; default :func:`tree_rss`)."""

    def __init__(self, measure: Callable[[], int] = tree_rss) -> None:
        self.measure = measure
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            self._stop.wait(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())
