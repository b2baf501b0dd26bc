"""Which bidders are sync partners of a domain (Amazon's ad system by default).

A bidder's domain comes from the shipped table ``data/bidders.yaml`` (Prebid bidder code ->
registrable domain of its endpoint; codes compared case-insensitively), or from the bidder name
itself when it is a host name. The partners come from sync pairs (``sync.jsonl`` of
``harness crawl sync``) or from a list of domains. Each bid then falls in one group: ``self``
(the chosen domain's own bids), ``partner``, ``non-partner``, or ``unknown`` (no domain known).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness.classify.listfile import load_list_file
from harness.crawl.sync import partners_of, read_syncs, site_domain
from harness.errors import InputError, Place

BIDDERS_FILE = "bidders.yaml"
GROUPS = ("self", "partner", "non-partner")


class _Bidder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str
    endpoint: str = ""


class _BiddersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    source: str
    date: datetime.date
    licence: str
    bidders: dict[str, _Bidder]


@cache
def bidder_table() -> dict[str, str]:
    """Bidder code (lower case) -> registrable domain, from the shipped table."""
    with as_file(files("harness.ads") / "data" / BIDDERS_FILE) as path:
        parsed = load_list_file(path, _BiddersFile)
    return {str(code).lower(): entry.domain for code, entry in parsed.bidders.items()}


def bidder_domain(bidder: str) -> str | None:
    """The registrable domain a bidder bids from, or None when unknown."""
    known = bidder_table().get(bidder.strip().lower())
    if known is not None:
        return known
    return site_domain(bidder.strip()) if "." in bidder else None


@dataclass(frozen=True)
class Partnership:
    """The chosen domain and its partners, and where they were read from."""

    domain: str
    partners: frozenset[str]
    source: str

    def group(self, bidder: str) -> str:
        """``self``, ``partner``, ``non-partner`` or ``unknown`` for a bidder code."""
        domain = bidder_domain(bidder)
        if domain is None:
            return "unknown"
        if domain == self.domain:
            return "self"
        return "partner" if domain in self.partners else "non-partner"


def from_syncs(paths: Iterable[str | Path], domain: str) -> Partnership:
    """The partners of ``domain`` in sync pairs (``sync.jsonl`` files or crawl directories)."""
    domain = site_domain(domain)
    names = [str(path) for path in paths]
    pairs = [pair for path in names for pair in read_syncs(Path(path))]
    found = frozenset(partner.domain for partner in partners_of(pairs, domain))
    return Partnership(domain, found, f"sync pairs in {', '.join(names)}")


def from_list(path: str | Path, domain: str) -> Partnership:
    """The partners of ``domain`` listed in a text file: one domain per line, ``#`` comments."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "not UTF-8 text", Place(offset=exc.start)) from None
    found = set()
    for number, line in enumerate(text.split("\n"), start=1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        if any(c.isspace() or c in ",;" for c in name) or "." not in name:
            raise InputError(path, f"not a domain name: {name!r} (one domain per line)", Place(line=number))
        found.add(site_domain(name))
    return Partnership(site_domain(domain), frozenset(found), f"the list {path}")
