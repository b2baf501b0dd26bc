"""An OpenWPM crawl database as crawl records, so sync detection runs on an OpenWPM crawl too.

Read (read-only) from OpenWPM's SQLite schema: ``http_requests`` (required) -> :class:`Request`;
``http_responses`` (status, ``Set-Cookie`` headers) and ``http_redirects`` (``new_request_id`` ->
``old_request_url``: ``redirected_from``) when present; ``javascript_cookies`` (the browser's
cookie-change events; deletions skipped) -> :class:`CookieWrite` with source ``jar``;
``site_visits.site_url`` is the site (else the request's ``top_level_url``). Older databases that
name the browser ``crawl_id`` are read alike. OpenWPM's ``main_frame``/``sub_frame`` resource
types become ``document``; ``loading_href`` (the document that made the request) is the frame URL.
Instants (``time_stamp``, ISO 8601, UTC) become UTC epoch nanoseconds.

One database holds one persona's browser (the study ran one container per persona). The records
are written to ``OUTPUT/<persona>/requests.jsonl`` and ``cookies.jsonl``, replacing an earlier
import of the same persona.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.crawl.layout import CrawlDir
from harness.crawl.records import CookieWrite, Request
from harness.errors import InputError, first_problem
from harness.files import atomic_write_text, private_dir

_FRAME_TYPES = {"main_frame": "document", "sub_frame": "document"}


@dataclass(frozen=True)
class ImportCounts:
    requests: int
    cookies: int
    visits: int


def import_openwpm(database: Path, persona: str, output: Path) -> ImportCounts:
    """Convert one OpenWPM database (one persona's browser) into records in ``output/persona/``."""
    if not persona.strip() or "/" in persona or persona.startswith("."):
        raise InputError("--persona", f"not a usable persona name: {persona!r}")
    with closing(_open(database)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "http_requests" not in tables:
            raise InputError(database, "not an OpenWPM crawl database: no http_requests table")
        sites = _sites(db, tables)
        requests = _requests(database, db, tables, persona, sites)
        cookies = _cookies(database, db, persona, sites) if "javascript_cookies" in tables else []
    crawl = CrawlDir(private_dir(output / persona))
    atomic_write_text(crawl.table("requests"), "".join(r.model_dump_json() + "\n" for r in requests))
    atomic_write_text(crawl.table("cookies"), "".join(c.model_dump_json() + "\n" for c in cookies))
    return ImportCounts(len(requests), len(cookies), len({r.visit_id for r in requests}))


def _open(database: Path) -> sqlite3.Connection:
    if not database.is_file():
        raise InputError(database, "no such file")
    try:
        db = sqlite3.connect(f"file:{database.resolve()}?mode=ro", uri=True)
        db.execute("SELECT name FROM sqlite_master LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise InputError(database, f"not an SQLite database: {exc}") from None
    db.row_factory = sqlite3.Row
    return db


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}  # table: one of ours


def _sites(db: sqlite3.Connection, tables: set[str]) -> dict[int, str]:
    if "site_visits" not in tables:
        return {}
    return {row["visit_id"]: row["site_url"] for row in db.execute("SELECT visit_id, site_url FROM site_visits")}


def _ns(database: Path, table: str, row_id: Any, value: Any) -> int:
    """An OpenWPM ``time_stamp`` (ISO 8601, UTC when it names no offset) as UTC epoch ns."""
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise InputError(database, f"{table} id {row_id}: time_stamp is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _requests(
    database: Path, db: sqlite3.Connection, tables: set[str], persona: str, sites: dict[int, str]
) -> list[Request]:
    columns = _columns(db, "http_requests")
    order = "event_ordinal" if "event_ordinal" in columns else "id"
    responses = _responses(db) if "http_responses" in tables else {}
    redirects = _redirects(db) if "http_redirects" in tables else {}
    found = []
    seq: dict[int, int] = {}
    for row in db.execute(f"SELECT * FROM http_requests ORDER BY visit_id, {order}, id"):  # order: a column name
        data = dict(row)
        visit = data["visit_id"]
        request_id = str(data.get("request_id", data["id"]))
        status, set_cookies = responses.get((visit, request_id), (None, []))
        post = data.get("post_body") or data.get("post_body_raw") or ""
        try:
            found.append(
                Request(
                    visit_id=f"{persona}/{visit}",
                    persona=persona,
                    site=sites.get(visit) or data.get("top_level_url") or "",
                    seq=seq.setdefault(visit, 0),
                    time_ns=_ns(database, "http_requests", data["id"], data["time_stamp"]),
                    url=data["url"],
                    method=data["method"],
                    resource_type=_FRAME_TYPES.get(data.get("resource_type") or "", data.get("resource_type") or ""),
                    frame_url=data.get("loading_href") or "",
                    referrer=data.get("referrer") or "",
                    post_data=post if isinstance(post, str) else "",
                    redirected_from=redirects.get((visit, request_id), ""),
                    status=status,
                    set_cookies=set_cookies,
                )
            )
        except ValidationError as exc:
            raise InputError(database, f"http_requests id {data['id']}: {first_problem(exc)}") from None
        seq[visit] += 1
    return found


def _responses(db: sqlite3.Connection) -> dict[tuple[int, str], tuple[int | None, list[str]]]:
    """(visit, request id) -> (status, Set-Cookie values) from ``http_responses``."""
    found = {}
    for row in db.execute("SELECT visit_id, request_id, response_status, headers FROM http_responses"):
        cookies = []
        try:
            headers = json.loads(row["headers"] or "[]")
        except ValueError:
            headers = []
        for pair in headers if isinstance(headers, list) else []:
            if isinstance(pair, list) and len(pair) == 2 and str(pair[0]).lower() == "set-cookie":
                cookies += [line for line in str(pair[1]).split("\n") if line.strip()]  # Firefox joins with \n
        status = row["response_status"]
        found[(row["visit_id"], str(row["request_id"]))] = (status if isinstance(status, int) else None, cookies)
    return found


def _redirects(db: sqlite3.Connection) -> dict[tuple[int, str], str]:
    """(visit, new request id) -> the URL that redirected to it, from ``http_redirects``."""
    return {
        (row["visit_id"], str(row["new_request_id"])): row["old_request_url"] or ""
        for row in db.execute("SELECT visit_id, new_request_id, old_request_url FROM http_redirects")
    }


def _cookies(database: Path, db: sqlite3.Connection, persona: str, sites: dict[int, str]) -> list[CookieWrite]:
    found = []
    for row in db.execute("SELECT * FROM javascript_cookies ORDER BY visit_id, id"):
        data = dict(row)
        if (data.get("record_type") or "").startswith("deleted"):
            continue
        expiry = data.get("expiry")
        try:
            found.append(
                CookieWrite(
                    visit_id=f"{persona}/{data['visit_id']}",
                    persona=persona,
                    site=sites.get(data["visit_id"], ""),
                    time_ns=_ns(database, "javascript_cookies", data["id"], data["time_stamp"]),
                    source="jar",
                    domain=data.get("host") or "",
                    name=data.get("name") or "",
                    value=data.get("value") or "",
                    path=data.get("path") or "/",
                    expires_ns=_ns(database, "javascript_cookies", data["id"], expiry) if expiry else None,
                    http_only=bool(data.get("is_http_only")),
                    secure=bool(data.get("is_secure")),
                    same_site=data.get("same_site") or "",
                )
            )
        except ValidationError as exc:
            raise InputError(database, f"javascript_cookies id {data['id']}: {first_problem(exc)}") from None
    return found
