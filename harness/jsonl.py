"""Append-only JSON-lines logs that survive a crash at any moment.

Each record is one line, written with a single ``write`` on a file opened for appending, then
flushed and fsynced, so a ``kill -9`` loses at most the record being written; a torn last line
is detected and skipped by :func:`read_jsonl` (and never rewritten).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import InputError, Place


class JsonlLog:
    """An append-only, fsynced JSON-lines file."""

    def __init__(self, path: str | Path, mode: int = 0o644) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        self._terminate_torn_line()

    def _terminate_torn_line(self) -> None:
        # A line torn by a crash must not swallow the next record: end it with a newline.
        size = os.fstat(self._fd).st_size
        if size:
            with open(self.path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, then flush it to disk."""
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: str | Path, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSON-lines file.

    A line that is not valid JSON (a record torn by a crash) is skipped, unless ``strict``, in
    which case it raises :class:`InputError` with its line number.
    """
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                if strict:
                    raise InputError(path, f"not a JSON record: {exc}", Place(line=number, column=1)) from None
                continue
            if isinstance(record, dict):
                yield record
            elif strict:
                raise InputError(path, "a record must be a JSON object", Place(line=number, column=1))
