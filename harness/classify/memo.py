"""Classification results kept on disk between runs, valid only for the exact lists and code that made them.

Loading the public-suffix list, the filter-list engines and the IP-to-ASN map costs about a
second per process, and the same Echo talks to the same few thousand endpoints every day. Each
memo is one JSON file in the user's cache folder (``$HARNESS_CACHE_DIR``, else
``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``; ``HARNESS_CACHE_DIR=off`` disables it),
named after a digest of everything a result depends on: this package's code and data, the
installed list packages and their data, and any user lists (path, size and modification time).
Change any of them and the old file is simply never read again (the oldest are pruned).
A memo that cannot be read is ignored; one that cannot be written is skipped: results are
the same either way, only slower.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.errors import OutputError
from harness.files import atomic_write_bytes

CACHE_ENV = "HARNESS_CACHE_DIR"
KEEP = 8  # memo files kept per cache folder (one per set of lists in use)
_PACKAGES = ("publicsuffixlist", "braveblock", "geoip2fast")


def cache_dir() -> Path | None:
    """The folder memos live in, or None when caching is off."""
    configured = os.environ.get(CACHE_ENV)
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "harness"


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _package_files(name: str) -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations)))
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def digest(extra: Iterable[str | Path] = ()) -> str:
    """What a memo's results depend on, as a short hex digest."""
    here = Path(__file__).parent
    files = sorted(p for p in here.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for name in _PACKAGES:
        files += _package_files(name)
    text = "\n".join([_stamp(p) for p in files] + [_stamp(Path(p).resolve()) for p in extra])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Memo:
    """A persistent ``key -> JSON value`` map for one kind of result under one digest.

    :meth:`get` computes and remembers missing values; :meth:`save` writes new ones (merged
    with what other processes saved meanwhile) atomically, readable by the owner only.
    """

    def __init__(self, kind: str, extra: Iterable[str | Path] = ()) -> None:
        self.kind = kind
        self.extra = tuple(extra)
        self._values: dict[str, Any] | None = None
        self._new: dict[str, Any] = {}
        self._path: Path | None = None

    def _load(self) -> dict[str, Any]:
        if self._values is None:
            folder = cache_dir()
            self._path = folder / f"{self.kind}-{digest(self.extra)}.json" if folder else None
            self._values = _read(self._path) if self._path else {}
        return self._values

    def get(self, key: str, compute: Callable[[str], Any]) -> Any:
        """The remembered value of ``key``, else ``compute(key)`` (remembered for :meth:`save`)."""
        values = self._load()
        if key in values:
            return values[key]
        value = values[key] = self._new[key] = compute(key)
        return value

    def save(self) -> None:
        """Write the values computed since the last save, if any and if caching is on."""
        if not self._new or self._path is None:
            return
        merged = _read(self._path) | self._new
        try:
            atomic_write_bytes(self._path, json.dumps(merged, separators=(",", ":")).encode())
            _prune(self._path.parent, self.kind)
        except (OSError, OutputError):
            return  # a read-only or full cache folder only costs speed
        self._new.clear()


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _prune(folder: Path, kind: str) -> None:
    memos = sorted(folder.glob(f"{kind}-*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in memos[KEEP:]:
        old.unlink(missing_ok=True)
