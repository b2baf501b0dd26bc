"""Cookie-sync detection: identifiers one domain set that then travelled to another domain.

Per persona, every identifier-like token (:mod:`harness.crawl.identifiers`) of a cookie (a
``cookies.jsonl`` write or a response's ``Set-Cookie``) or a storage write has an owner: the
registrable domain that wrote it first. A request to another registrable domain that carries the
token in its URL (path, query), its referrer or its POST body is a :class:`SyncPair` from the
owner to that domain; carrier ``redirect`` when the request ends a redirect chain that passed
through the owner's domain. A token that no cookie or storage holds but that first appears in a redirect hop's URL
(the previous hop's URL lacks it: the server put it there) is owned by the redirecting domain,
the classic sync shape ``x.com/sync -> 302 -> y.com/match?xid=ID``.

Never counted as identifiers, beyond :func:`~harness.crawl.identifiers.why_not`: tokens of the
visited page's own URLs (they ride in every referrer), tokens seen for more than one persona
(constants shared by all users: publisher ids, versions, consent strings alike for everyone),
and values of consent cookies and URL parameters (TCF/GPP/US-privacy strings). Traffic within one
registrable domain is never a sync.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ValidationError

from harness.classify.suffixes import registrable_domain
from harness.crawl.identifiers import decode, tokens, url_tokens, why_not
from harness.crawl.layout import SYNC, CrawlDir
from harness.crawl.records import CookieWrite, Request, StorageWrite, SyncPair
from harness.errors import InputError, Place, first_problem
from harness.files import atomic_write_bytes, atomic_write_text
from harness.textsafe import csv_safe_frame

#: Amazon's ad system: whose partners ``harness crawl sync`` lists by default.
DEFAULT_DOMAIN = "amazon-adsystem.com"
# Consent strings differ per user (they embed the moment of consent) but identify nobody.
_CONSENT_NAME = re.compile(r"consent|gpp|us_?privacy|^gdpr$|^addtl", re.IGNORECASE)
M = TypeVar("M", bound=BaseModel)


def site_domain(host_or_url: str) -> str:
    """Registrable domain of a host or URL; a name under an unlisted suffix (``.test``,
    ``.example``, ``localhost``) is taken as its last two labels, an address as itself."""
    try:
        host = (urlsplit(host_or_url).hostname if "/" in host_or_url else host_or_url) or ""
    except ValueError:
        host = ""
    return _host_domain(host.strip(".").lower())


@lru_cache(maxsize=1 << 16)
def _host_domain(host: str) -> str:
    try:
        ip_address(host)
        return host
    except ValueError:
        pass
    return registrable_domain(host) or ".".join(host.split(".")[-2:])


@dataclass(frozen=True)
class Owner:
    """Who first wrote a token, and when."""

    domain: str
    time_ns: int


@dataclass
class SyncResult:
    pairs: list[SyncPair]
    personas: list[str]
    warnings: list[str] = field(default_factory=list)


def find_syncs(
    requests: Iterable[Request], cookies: Iterable[CookieWrite] = (), storage: Iterable[StorageWrite] = ()
) -> SyncResult:
    """Every sync pair of a crawl (all personas at once: constants are told by crossing them)."""
    requests = sorted(requests, key=lambda r: (r.visit_id, r.seq, r.time_ns))
    cookies, storage = list(cookies), list(storage)
    personas = sorted({r.persona for r in (*requests, *cookies, *storage)})
    warnings = []
    if len(personas) == 1:
        warnings.append(f"one persona only ({personas[0]}): values shared by all users cannot be told from identifiers")
    carried = [_carried(request) for request in requests]
    shared = _shared_tokens(requests, carried, cookies, storage)
    owners = _owners(requests, cookies, storage)
    stable = _stable_tokens(requests, carried)
    pairs: dict[tuple, SyncPair] = {}
    start = 0
    while start < len(requests):
        end = start
        while end < len(requests) and requests[end].visit_id == requests[start].visit_id:
            end += 1
        visit = requests[start:end]
        persona = visit[0].persona
        excluded = (shared, _page_tokens(visit))
        for pair in _visit_pairs(visit, carried[start:end], owners[persona], stable[persona], excluded):
            key = (pair.visit_id, pair.identifier, pair.sender, pair.receiver, pair.carrier, pair.request_url)
            pairs.setdefault(key, pair)
        start = end
    ordered = sorted(pairs.values(), key=lambda p: (p.persona, p.visit_id, p.time_ns, p.receiver, p.identifier))
    return SyncResult(pairs=ordered, personas=personas, warnings=warnings)


def _shared_tokens(
    requests: Sequence[Request],
    carried: Sequence[dict[str, str]],
    cookies: Sequence[CookieWrite],
    storage: Sequence[StorageWrite],
) -> set[str]:
    """Tokens seen for more than one persona, anywhere."""
    seen: dict[str, str] = {}
    shared: set[str] = set()

    def note(persona: str, found: Iterable[str]) -> None:
        for token in found:
            first = seen.setdefault(token, persona)
            if first != persona:
                shared.add(token)

    for request, found in zip(requests, carried, strict=True):
        note(request.persona, found)
    for cookie in cookies:
        note(cookie.persona, tokens(cookie.value))
    for write in storage:
        note(write.persona, tokens(write.value))
    return shared


def _stable_tokens(requests: Sequence[Request], carried: Sequence[dict[str, str]]) -> dict[str, set[str]]:
    """Per persona, the tokens its requests carry in two or more visits (a nonce lives once)."""
    first_visit: dict[tuple[str, str], str] = {}
    stable: dict[str, set[str]] = defaultdict(set)
    for request, found in zip(requests, carried, strict=True):
        for token in found:
            visit = first_visit.setdefault((request.persona, token), request.visit_id)
            if visit != request.visit_id:
                stable[request.persona].add(token)
    return stable


def _page_tokens(visit: Sequence[Request]) -> set[str]:
    """The tokens of the visited page's own URLs: the site as listed and its documents and frames."""
    found = url_tokens(visit[0].site)
    own = site_domain(visit[0].site)
    for request in visit:
        if request.resource_type == "document" and site_domain(request.url) == own:
            found |= url_tokens(request.url)
        if request.frame_url and site_domain(request.frame_url) == own:
            found |= url_tokens(request.frame_url)
    return found


def _owners(
    requests: Sequence[Request], cookies: Sequence[CookieWrite], storage: Sequence[StorageWrite]
) -> dict[str, dict[str, Owner]]:
    """Per persona, per token: the domain that wrote it first (cookies, Set-Cookie, storage)."""
    owners: dict[str, dict[str, Owner]] = defaultdict(dict)

    def own(persona: str, domain: str, time_ns: int, name: str, value: str) -> None:
        if _CONSENT_NAME.search(name):
            return
        table = owners[persona]
        for token in tokens(value):
            known = table.get(token)
            if why_not(token, time_ns) is None and (known is None or time_ns < known.time_ns):
                table[token] = Owner(domain, time_ns)

    for cookie in cookies:
        own(cookie.persona, site_domain(cookie.domain), cookie.time_ns, cookie.name, cookie.value)
    for write in storage:
        own(write.persona, site_domain(write.origin), write.time_ns, write.key, write.value)
    for request in requests:
        for header in request.set_cookies:
            name, value, domain = _set_cookie(header)
            own(request.persona, site_domain(domain or request.url), request.time_ns, name, value)
    return owners


def _set_cookie(header: str) -> tuple[str, str, str]:
    """(name, value, Domain attribute or '') of a Set-Cookie header value."""
    first, *attributes = header.split(";")
    name, _, value = first.partition("=")
    domain = ""
    for attribute in attributes:
        key, _, text = attribute.partition("=")
        if key.strip().lower() == "domain":
            domain = text.strip()
    return name.strip(), value.strip(), domain


def _carried(request: Request) -> dict[str, str]:
    """Tokens a request carries to its server, each with its carrier (url, referrer, body);
    values of consent parameters left out."""
    found: dict[str, str] = {}
    for carrier, text, is_url in (
        ("body", request.post_data, False),
        ("referrer", request.referrer, True),
        ("url", request.url, True),
    ):
        if text:
            for token in _text_tokens(text, is_url):
                found[token] = carrier  # the URL wins over the referrer, the referrer over the body
    return found


def _text_tokens(text: str, is_url: bool) -> set[str]:
    try:
        query = urlsplit(text).query if is_url else decode(text)
    except ValueError:  # a malformed URL (an unclosed IPv6 bracket): its tokens, no consent keys
        query = ""
    found = url_tokens(text) if is_url else tokens(text)
    consent = [value for key, value in parse_qsl(query, keep_blank_values=True) if _CONSENT_NAME.search(key)]
    return found - {token for value in consent for token in tokens(value)}


def _visit_pairs(
    visit: Sequence[Request],
    carried: Sequence[dict[str, str]],
    owners: dict[str, Owner],
    stable: set[str],
    excluded: tuple[set[str], ...],
) -> Iterator[SyncPair]:
    by_url = {request.url: request for request in visit}  # the hops of redirect chains, whatever their order
    for request, found in zip(visit, carried, strict=True):
        receiver = site_domain(request.url)
        if not receiver:  # no host to name (a malformed URL, data:, blob:)
            continue
        chain = _chain_domains(request, by_url)
        for token, carrier in found.items():
            if any(token in never for never in excluded):
                continue
            owner = owners.get(token)
            if owner is not None:
                sender = owner.domain
                kind = "redirect" if carrier == "url" and sender in chain else carrier
            elif carrier == "url" and chain and token in stable and why_not(token, request.time_ns) is None:
                sender = _inserter(token, request, by_url)
                kind = "redirect"
            else:
                continue
            if sender and sender != receiver:
                yield SyncPair(
                    visit_id=request.visit_id,
                    persona=request.persona,
                    site=request.site,
                    time_ns=request.time_ns,
                    identifier=token,
                    sender=sender,
                    receiver=receiver,
                    carrier=kind,
                    request_url=request.url,
                )


def _chain_domains(request: Request, by_url: dict[str, Request]) -> set[str]:
    """The registrable domains of the redirect hops that led to ``request`` (empty if none)."""
    domains: set[str] = set()
    current = request
    while current.redirected_from and len(domains) < 50:
        domains.add(site_domain(current.redirected_from))
        previous = by_url.get(current.redirected_from)
        if previous is None or previous is current:
            break
        current = previous
    return domains


def _inserter(token: str, request: Request, by_url: dict[str, Request]) -> str | None:
    """The domain whose redirect first put ``token`` into the chain that ends in ``request``:
    the hop before the first URL of the chain that holds it (None if the chain starts with it)."""
    current, hops = request, 0
    while current.redirected_from and hops < 50:
        before_url = current.redirected_from
        if token not in url_tokens(before_url):
            return site_domain(before_url)
        previous = by_url.get(before_url)
        if previous is None:
            return None
        current, hops = previous, hops + 1
    return None


@dataclass(frozen=True)
class Partner:
    """A domain that syncs with the chosen one: pairs in each direction, where and for whom."""

    domain: str
    receives: int  # pairs from the chosen domain to this one
    sends: int  # pairs from this one to the chosen domain
    personas: list[str]
    visits: int
    carriers: list[str]


def partners_of(pairs: Iterable[SyncPair], domain: str) -> list[Partner]:
    """The domains that receive ``domain``'s identifiers or send theirs to it, most pairs first."""
    domain = site_domain(domain)
    receives: dict[str, int] = defaultdict(int)
    sends: dict[str, int] = defaultdict(int)
    personas: dict[str, set[str]] = defaultdict(set)
    visits: dict[str, set[str]] = defaultdict(set)
    carriers: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        if pair.sender == domain:
            other = pair.receiver
            receives[other] += 1
        elif pair.receiver == domain:
            other = pair.sender
            sends[other] += 1
        else:
            continue
        personas[other].add(pair.persona)
        visits[other].add(pair.visit_id)
        carriers[other].add(pair.carrier)
    rows = [
        Partner(
            domain=other,
            receives=receives[other],
            sends=sends[other],
            personas=sorted(personas[other]),
            visits=len(visits[other]),
            carriers=sorted(carriers[other]),
        )
        for other in personas
    ]
    return sorted(rows, key=lambda p: (-(p.receives + p.sends), p.domain))


def read_records(path: Path, model: type[M]) -> list[M]:
    """The records of one crawl JSON-lines file; a torn last line (a crash) is skipped, any other
    bad line is an :class:`InputError` naming the file and the line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    lines = raw.split(b"\n")
    found = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = number == len(lines) and not raw.endswith(b"\n")
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if torn:
                continue
            raise InputError(path, f"not a JSON record: {exc}", Place(line=number)) from None
        try:
            found.append(model.model_validate(data))
        except ValidationError as exc:
            raise InputError(path, first_problem(exc), Place(line=number)) from None
    return found


def crawl_files(crawl_dir: Path, table: str) -> list[Path]:
    """Every file of one table (``requests``, ``cookies``, ...) in a crawl directory: at its top,
    or in per-persona folders (as ``harness crawl import openwpm`` writes them)."""
    name = CrawlDir(crawl_dir).table(table).name
    return sorted(path for path in crawl_dir.rglob(name) if path.is_file())


def read_crawl(crawl_dir: Path) -> tuple[list[Request], list[CookieWrite], list[StorageWrite]]:
    """The requests, cookie writes and storage writes of a crawl directory."""
    if not crawl_dir.is_dir():
        raise InputError(crawl_dir, "not a crawl directory (no such folder)")
    requests = [r for path in crawl_files(crawl_dir, "requests") for r in read_records(path, Request)]
    if not requests:
        raise InputError(crawl_dir, "no requests recorded (no requests.jsonl with records)")
    cookies = [c for path in crawl_files(crawl_dir, "cookies") for c in read_records(path, CookieWrite)]
    storage = [s for path in crawl_files(crawl_dir, "storage") for s in read_records(path, StorageWrite)]
    return requests, cookies, storage


def write_syncs(crawl_dir: Path, pairs: Sequence[SyncPair]) -> list[Path]:
    """``sync.jsonl`` in the crawl directory, and the same table as ``tables/sync.parquet`` and
    ``tables/sync.csv``, each replaced atomically and private; returns the paths written."""
    import io

    import pandas as pd

    crawl = CrawlDir(crawl_dir)
    rows = [pair.model_dump() for pair in pairs]
    frame = pd.DataFrame(rows, columns=list(SyncPair.model_fields)).astype({"time_ns": "int64"})
    jsonl = atomic_write_text(crawl.table(SYNC), "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    parquet = atomic_write_bytes(crawl.parquet(SYNC), buffer.getvalue())
    csv = atomic_write_text(parquet.with_suffix(".csv"), csv_safe_frame(frame).to_csv(index=False))
    return [jsonl, parquet, csv]


def read_syncs(path: Path) -> list[SyncPair]:
    """The pairs of a ``sync.jsonl`` file, or of the one in a crawl directory."""
    return read_records(CrawlDir(path).table(SYNC) if path.is_dir() else path, SyncPair)
