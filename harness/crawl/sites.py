"""The list of sites a crawl visits: a text file of URLs, one a line (``#`` starts a comment)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from harness.errors import InputError, Place
from harness.files import atomic_write_text
from harness.jsonl import text_lines


def read_sites(path: str | Path) -> list[str]:
    """The URLs of ``path`` in order; a line that is not an http(s) URL is one error naming its
    line and column. A site listed twice is an error too (each is visited once per persona)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "not UTF-8 text", Place(offset=exc.start)) from None
    sites: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text_lines(text), start=1):
        url = "" if line.lstrip().startswith("#") else line.strip()
        if not url:
            continue
        column = len(line) - len(line.lstrip()) + 1
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
            raise InputError(path, f"not an http(s) URL: {url[:80]!r}", Place(line=number, column=column))
        if url in seen:
            raise InputError(
                path, f"listed twice (first on line {seen[url]}): {url}", Place(line=number, column=column)
            )
        seen[url] = number
        sites.append(url)
    if not sites:
        raise InputError(path, "no sites listed")
    return sites


def write_sites(path: str | Path, sites: list[str]) -> Path:
    """Write a sites file (atomically) that :func:`read_sites` reads back."""
    return atomic_write_text(path, "".join(f"{site}\n" for site in sites))
