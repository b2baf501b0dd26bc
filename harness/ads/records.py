"""Records out of CSV, JSON lines and JSON array files, each with the line it starts on.

A row that cannot be read (a JSON line that is not an object) comes back as a
:class:`BadRecord` so the caller can skip or fail on it like any other bad row; damage that
leaves no way to find the next record (a broken JSON array, non-UTF-8 bytes) raises
:class:`~harness.errors.InputError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError, Place
from harness.jsonl import text_lines

_KEY = re.compile(r"[\s\-]+")
# Python's JSON decoder recurses once per level and gives up near its recursion limit.
_TOO_DEEP = "not a JSON record: nested too deeply"


@dataclass(frozen=True)
class Record:
    line: int
    data: dict[str, Any]


@dataclass(frozen=True)
class BadRecord:
    line: int
    message: str


def normalise_key(key: str) -> str:
    """CSV header spelling -> field name: ``Visit Time`` -> ``visit_time``."""
    return _KEY.sub("_", key.strip().lower())


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "not UTF-8 text", Place(offset=exc.start)) from None


def file_format(path: Path, text: str) -> str:
    """``csv``, ``jsonl`` or ``json`` (an array or one object), from the name, else the content."""
    suffix = path.suffix.lower()
    head = text.lstrip()[:1]
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    if head == "[":
        return "json"
    if head == "{":
        try:
            return "json" if isinstance(json.loads(text), dict) and suffix == ".json" else "jsonl"
        except (json.JSONDecodeError, RecursionError):
            return "jsonl"
    return "csv"


def records(path: Path, text: str, fmt: str) -> Iterator[Record | BadRecord]:
    """The rows of a file in order; CSV cells left empty are dropped so defaults apply."""
    if fmt == "csv":
        return _csv_records(path, text)
    if fmt == "jsonl":
        return _jsonl_records(text)
    return _json_records(path, text)


def _csv_records(path: Path, text: str) -> Iterator[Record | BadRecord]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [normalise_key(cell) for cell in row]
                continue
            if len(row) > len(header):
                yield BadRecord(line, f"{len(row)} cells but the header has {len(header)}")
                continue
            yield Record(line, {key: cell for key, cell in zip(header, row, strict=False) if cell.strip()})
    except csv.Error as exc:
        raise InputError(path, f"not valid CSV: {exc}", Place(line=reader.line_num)) from None


def csv_header(text: str) -> list[str]:
    """The normalised header of a CSV text (the first non-blank row)."""
    for row in csv.reader(io.StringIO(text, newline="")):
        if any(cell.strip() for cell in row):
            return [normalise_key(cell) for cell in row]
    return []


def _jsonl_records(text: str) -> Iterator[Record | BadRecord]:
    for number, raw in enumerate(text_lines(text), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield BadRecord(number, f"not a JSON record: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            yield BadRecord(number, _TOO_DEEP)
            continue
        yield Record(number, value) if isinstance(value, dict) else BadRecord(number, "a record must be a JSON object")


def _json_records(path: Path, text: str) -> Iterator[Record | BadRecord]:
    decoder = json.JSONDecoder()
    index = _skip_space(text, 0)
    if text.startswith("{", index):
        yield from _one_element(path, text, decoder, index)
        return
    index = _skip_space(text, index + 1)  # past "["
    if text.startswith("]", index):
        return
    line, counted = 1, 0  # line numbers counted on from the previous record: linear in the file
    while True:
        line += text.count("\n", counted, index)
        counted = index
        value, index = _decode_at(path, text, decoder, index)
        yield Record(line, value) if isinstance(value, dict) else BadRecord(line, "a record must be a JSON object")
        index = _skip_space(text, index)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
        elif text.startswith("]", index):
            if text[index + 1 :].strip():
                raise _position_error(path, text, index + 1, "text after the end of the JSON array")
            return
        else:
            raise _position_error(path, text, index, "expected ',' or ']' in the JSON array")


def _one_element(path: Path, text: str, decoder: json.JSONDecoder, index: int) -> Iterator[Record]:
    value, end = _decode_at(path, text, decoder, index)
    if text[end:].strip():
        raise _position_error(path, text, end, "text after the JSON object")
    yield Record(text.count("\n", 0, index) + 1, value)


def _decode_at(path: Path, text: str, decoder: json.JSONDecoder, index: int) -> tuple[Any, int]:
    try:
        return decoder.raw_decode(text, index)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc.msg}", Place(line=exc.lineno, column=exc.colno)) from None
    except RecursionError:
        raise _position_error(path, text, index, "not valid JSON: nested too deeply") from None


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _position_error(path: Path, text: str, index: int, message: str) -> InputError:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return InputError(path, message, Place(line=line, column=column))
