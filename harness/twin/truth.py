"""``truth.jsonl``: what the twin heard, said and sent, one fsynced record per line.

Every record has ``record`` (its kind), ``seq`` (1, 2, ... in file order) and ``t_ns`` (UTC
epoch ns when it was written). Kinds and their fields are documented in docs/twin.md.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from harness.jsonl import JsonlLog

TRUTH_NAME = "truth.jsonl"
RECORD_KINDS = ("twin_started", "wake", "request", "answer", "flow", "failure", "twin_stopped")


class Truth:
    """The append-only truth log; :meth:`write` is safe from any thread and returns the seq."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._log = JsonlLog(self.path, mode=0o600)
        self._lock = threading.Lock()
        self._seq = 0

    def write(self, record: str, **fields: Any) -> int:
        assert record in RECORD_KINDS, record
        with self._lock:
            self._seq += 1
            self._log.append({"record": record, "seq": self._seq, "t_ns": time.time_ns(), **fields})
            return self._seq

    def close(self) -> None:
        with self._lock:
            self._log.close()
