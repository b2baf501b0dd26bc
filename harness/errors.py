"""User-facing errors: each names the file and the place, and prints as one line.

Only bugs produce tracebacks; everything a user can cause (a bad script, a damaged capture, a
missing device) is raised as a :class:`HarnessError` and printed by the CLI with exit status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class HarnessError(Exception):
    """An error caused by the user's input or environment, not by a bug."""


@dataclass(frozen=True)
class Place:
    """Where in a file something is: line and column (1-based) or a byte offset."""

    line: int | None = None
    column: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.line}:{self.column or 1}"
        if self.offset is not None:
            return f"byte {self.offset}"
        return ""


class InputError(HarnessError):
    """Bad content in a file, printed as ``FILE:LINE:COLUMN: message`` (or ``FILE: byte N: ...``)."""

    def __init__(self, path: str | Path, message: str, place: Place | None = None) -> None:
        self.path = str(path)
        self.message = message
        self.place = place or Place()
        super().__init__(str(self))

    def __str__(self) -> str:
        where = str(self.place)
        if self.place.line is not None:
            return f"{self.path}:{where}: {self.message}"
        if where:
            return f"{self.path}: {where}: {self.message}"
        return f"{self.path}: {self.message}"


class DeviceError(HarnessError):
    """An audio or network device is missing, ambiguous or was lost."""


class ToolMissing(HarnessError):
    """An external program the command needs (espeak-ng, tcpdump, ...) is not installed."""


class OutputError(HarnessError):
    """A file or folder could not be written (disk full, read-only, not ours), printed as ``PATH: message``."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def first_problem(exc: ValidationError) -> str:
    """The first problem a pydantic validation found, as one ``where: message`` line."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
