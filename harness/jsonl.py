"""Append-only JSON-lines logs that survive a crash at any moment.

Each record is one line, written whole on a file opened for appending, then fsynced, so a
``kill -9`` loses at most the record being written; a torn last line is detected and skipped by
:func:`read_jsonl` (and never rewritten). A write that fails (disk full) is undone and raised as
:class:`~harness.errors.OutputError`, so no record is ever torn and glued to the next.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import InputError, Place
from harness.files import PRIVATE_FILE, output_error, private_dir, write_all


def text_lines(text: str) -> list[str]:
    """``text`` split into lines as editors and ``grep -n`` count them: at ``\n`` only (a ``\r``
    before it dropped). ``str.splitlines`` also splits at U+2028, U+2029, U+0085 and form feeds,
    which JSON allows raw inside strings: a record would be cut in two and every later line
    number shifted."""
    return [line.removesuffix("\r") for line in text.split("\n")]


class JsonlLog:
    """An append-only, fsynced JSON-lines file (created with ``mode``, in a private folder if new).

    Raises :class:`~harness.errors.OutputError` naming the file when it cannot be opened or a
    record cannot be written; a symbolic link at ``path`` is refused, never written through.
    """

    def __init__(self, path: str | Path, mode: int = PRIVATE_FILE) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            private_dir(self.path.parent)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise output_error(self.path, exc, "cannot open for appending") from None
        # A line torn by a crash, or by a failed undo, must not swallow the next record.
        self._torn = self._last_byte() not in (b"", b"\n")

    def _last_byte(self) -> bytes:
        size = os.fstat(self._fd).st_size
        if not size:
            return b""
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one whole line and flush it to disk, or raise OutputError leaving
        the file as it was (a partly written record is cut off again)."""
        self.extend([record])

    def extend(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` as whole lines with one write and one flush to disk (a batch costs one
        fsync), or raise OutputError leaving the file as it was. A process killed meanwhile may
        leave the first records of the batch, each whole but for a torn last line."""
        if not records:
            return
        lines = "".join(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in records)
        data = (b"\n" if self._torn else b"") + lines.encode("utf-8")
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            write_all(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._torn = True
            raise output_error(self.path, exc) from None
        self._torn = False

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
