"""Endpoint lists: host-name patterns with a category and party (shipped and user-supplied)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from fnmatch import translate
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.classify.listfile import load_list_file
from harness.classify.model import Category, Party

SHIPPED_FILE = "smart_speaker_endpoints.yaml"

_LABELS = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_*]([a-z0-9_*-]{0,61}[a-z0-9_*])?)(\.([a-z0-9_*]([a-z0-9_*-]{0,61}[a-z0-9_*])?))*$"
)


class EndpointEntry(BaseModel):
    """One entry: exactly one of ``name`` (glob) or ``domain`` (the domain and its subdomains)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    domain: str | None = None
    category: Category
    party: Party | None = None
    note: str = ""
    paths: list[str] = Field(default_factory=list)

    @field_validator("name", "domain")
    @classmethod
    def _host_pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower().rstrip(".")
        if not _LABELS.match(value):
            raise ValueError(f"not a host name pattern: {value!r}")
        return value

    @field_validator("domain")
    @classmethod
    def _no_glob(cls, value: str | None) -> str | None:
        if value is not None and "*" in value:
            raise ValueError("a domain covers its subdomains already; use `name` for globs")
        return value

    @field_validator("paths")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/") or any(ch.isspace() for ch in path):
                raise ValueError(f"a path starts with '/' and has no spaces: {path!r}")
        return value

    @model_validator(mode="after")
    def _one_pattern(self) -> EndpointEntry:
        if (self.name is None) == (self.domain is None):
            raise ValueError("give exactly one of `name` or `domain`")
        return self


class EndpointListFile(BaseModel):
    """An endpoint list file. Shipped lists fill in source, date and licence."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    source: str | None = None
    date: datetime.date | None = None
    licence: str | None = None
    endpoints: list[EndpointEntry]


@dataclass(frozen=True, slots=True)
class EndpointMatch:
    """The entry a host name matched, and the list it came from."""

    list_name: str
    category: Category
    party: Party | None
    note: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class EndpointList:
    """A loaded list; :meth:`match` returns the first entry matching a host name."""

    name: str
    path: Path
    entries: tuple[EndpointEntry, ...]
    # One alternation of all entries, in order: the regex engine tries them first to last.
    _pattern: re.Pattern[str]

    @classmethod
    def load(cls, path: str | Path) -> EndpointList:
        """Read and validate a list (raises InputError with line and column)."""
        path = Path(path)
        parsed = load_list_file(path, EndpointListFile)
        pattern = re.compile("|".join(f"({_entry_regex(entry)})" for entry in parsed.endpoints) or "(?!)")
        return cls(parsed.name or path.stem, path, tuple(parsed.endpoints), pattern)

    def match(self, name: str) -> EndpointMatch | None:
        found = self._pattern.match(name)
        if found is None:
            return None
        entry = self.entries[found.lastindex - 1]
        return EndpointMatch(self.name, entry.category, entry.party, entry.note, tuple(entry.paths))


def _entry_regex(entry: EndpointEntry) -> str:
    # No groups inside an entry's regex, so group N is entry N.
    if entry.domain is not None:
        return rf"(?:.+\.)?{re.escape(entry.domain)}\Z"
    assert entry.name is not None
    return translate(entry.name)


@cache
def shipped_list() -> EndpointList:
    """The project's smart-speaker endpoint list."""
    with as_file(files("harness.classify") / "data" / SHIPPED_FILE) as path:
        return EndpointList.load(path)
