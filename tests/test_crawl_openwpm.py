"""OpenWPM databases (OpenWPM's own table and column names) into crawl records, then sync detection,
and ``harness crawl sync`` / ``harness crawl import openwpm`` on the command line."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

import harness.cli.main as cli
from harness.crawl.openwpm import import_openwpm
from harness.crawl.sync import find_syncs, read_crawl, read_syncs

# The tables as OpenWPM's openwpm/storage/schema.sql creates them (the columns this import reads
# and their neighbours; http_requests is given in full).
SCHEMA = """
CREATE TABLE site_visits (visit_id INTEGER PRIMARY KEY, browser_id INTEGER NOT NULL,
    site_url VARCHAR(500) NOT NULL, site_rank INTEGER);
CREATE TABLE http_requests(id INTEGER PRIMARY KEY AUTOINCREMENT, incognito INTEGER,
    browser_id INTEGER NOT NULL, visit_id INTEGER NOT NULL, extension_session_uuid TEXT,
    event_ordinal INTEGER, window_id INTEGER, tab_id INTEGER, frame_id INTEGER, url TEXT NOT NULL,
    top_level_url TEXT, parent_frame_id INTEGER, frame_ancestors TEXT, method TEXT NOT NULL,
    referrer TEXT NOT NULL, headers TEXT NOT NULL, request_id INTEGER NOT NULL, is_XHR INTEGER,
    is_third_party_channel INTEGER, is_third_party_to_top_window INTEGER, triggering_origin TEXT,
    loading_origin TEXT, loading_href TEXT, req_call_stack TEXT, resource_type TEXT NOT NULL,
    post_body TEXT, post_body_raw TEXT, time_stamp DATETIME NOT NULL);
CREATE TABLE http_responses(id INTEGER PRIMARY KEY AUTOINCREMENT, incognito INTEGER,
    browser_id INTEGER NOT NULL, visit_id INTEGER NOT NULL, extension_session_uuid TEXT,
    event_ordinal INTEGER, window_id INTEGER, tab_id INTEGER, frame_id INTEGER, url TEXT NOT NULL,
    method TEXT NOT NULL, response_status INTEGER, response_status_text TEXT NOT NULL,
    is_cached INTEGER NOT NULL, headers TEXT NOT NULL, request_id INTEGER NOT NULL,
    location TEXT NOT NULL, time_stamp DATETIME NOT NULL, content_hash TEXT);
CREATE TABLE http_redirects(id INTEGER PRIMARY KEY AUTOINCREMENT, incognito INTEGER,
    browser_id INTEGER NOT NULL, visit_id INTEGER NOT NULL, old_request_url TEXT, old_request_id TEXT,
    new_request_url TEXT, new_request_id TEXT, extension_session_uuid TEXT, event_ordinal INTEGER,
    window_id INTEGER, tab_id INTEGER, frame_id INTEGER, response_status INTEGER NOT NULL,
    response_status_text TEXT NOT NULL, headers TEXT NOT NULL, time_stamp DATETIME NOT NULL);
CREATE TABLE javascript_cookies(id INTEGER PRIMARY KEY ASC, browser_id INTEGER NOT NULL,
    visit_id INTEGER NOT NULL, extension_session_uuid TEXT, event_ordinal INTEGER, record_type TEXT,
    change_cause TEXT, expiry DATETIME, is_http_only INTEGER, is_host_only INTEGER, is_session INTEGER,
    host TEXT, is_secure INTEGER, name TEXT, path TEXT, value TEXT, same_site TEXT,
    first_party_domain TEXT, store_id STRING, time_stamp DATETIME);
"""
SITE = "https://news.example/"


def openwpm_db(path: Path, ident: str, js_ident: str) -> Path:
    """One persona's OpenWPM crawl: a visit where Amazon's sync redirects to AppNexus with its
    id (Set-Cookie seen in http_responses) and a script cookie of Criteo's goes to Rubicon."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.execute("INSERT INTO site_visits VALUES (1, 1, ?, 1)", (SITE,))

    def request(rid: int, url: str, kind: str, when: str, referrer: str = SITE) -> None:
        db.execute(
            "INSERT INTO http_requests (browser_id, visit_id, event_ordinal, url, top_level_url, method, "
            "referrer, headers, request_id, resource_type, loading_href, time_stamp) "
            "VALUES (1, 1, ?, ?, ?, 'GET', ?, '[]', ?, ?, ?, ?)",
            (rid, url, SITE, referrer, rid, kind, SITE, when),
        )

    request(1, SITE, "main_frame", "2023-11-14T22:13:20.000Z", referrer="")
    sync_url = "https://s.amazon-adsystem.com/ecm3?ex=appnexus"
    request(2, sync_url, "image", "2023-11-14T22:13:21.000Z")
    headers = json.dumps([["Location", "x"], ["Set-Cookie", f"ad-id={ident}; Domain=.amazon-adsystem.com\nx=1"]])
    db.execute(
        "INSERT INTO http_responses (browser_id, visit_id, url, method, response_status, response_status_text, "
        "is_cached, headers, request_id, location, time_stamp) VALUES (1, 1, ?, 'GET', 302, 'Found', 0, ?, 2, "
        "'', '2023-11-14T22:13:21.100Z')",
        (sync_url, headers),
    )
    request(3, f"https://ib.adnxs.com/setuid?entity=amzn&code={ident}", "image", "2023-11-14T22:13:21.200Z")
    db.execute(
        "INSERT INTO http_redirects (browser_id, visit_id, old_request_url, old_request_id, new_request_url, "
        "new_request_id, response_status, response_status_text, headers, time_stamp) "
        "VALUES (1, 1, ?, '2', 'x', '3', 302, 'Found', '[]', '2023-11-14T22:13:21.150Z')",
        (sync_url,),
    )
    db.execute(
        "INSERT INTO javascript_cookies (browser_id, visit_id, record_type, change_cause, expiry, is_http_only, "
        "is_host_only, is_session, host, is_secure, name, path, value, same_site, time_stamp) VALUES "
        "(1, 1, 'added-or-changed', 'explicit', '2024-11-14T22:13:20.000Z', 0, 0, 0, '.criteo.com', 1, "
        "'cto_bundle', '/', ?, 'no_restriction', '2023-11-14T22:13:22.000Z')",
        (f"v=2&id={js_ident}",),
    )
    request(4, f"https://pixel.rubiconproject.com/tap.php?put={js_ident}", "image", "2023-11-14T22:13:23.000Z")
    db.commit()
    db.close()
    return path


IDS = {
    "health": ("3f9a2c71e0b84d5a6c11", "Ab3x9QeLw2Rt7YuZ0p"),
    "vanilla": ("8d1e5b7c9a2f4e6d0b33", "Kq7Wm2Xc9Vb4Nn1Tz8"),
}


@pytest.fixture
def crawl(tmp_path: Path) -> Path:
    out = tmp_path / "crawl"
    for persona, (ident, js_ident) in IDS.items():
        import_openwpm(openwpm_db(tmp_path / f"{persona}.sqlite", ident, js_ident), persona, out)
    return out


def test_openwpm_tables_become_records_and_syncs(crawl: Path) -> None:
    requests, cookies, storage = read_crawl(crawl)
    health = [r for r in requests if r.persona == "health"]
    assert [r.resource_type for r in health] == ["document", "image", "image", "image"]
    assert health[2].redirected_from == "https://s.amazon-adsystem.com/ecm3?ex=appnexus"
    assert health[1].status == 302 and health[1].set_cookies[0].startswith("ad-id=")
    assert health[0].time_ns == 1_700_000_000 * 10**9 and health[0].site == SITE
    assert cookies[0].domain == ".criteo.com" and cookies[0].source == "jar" and storage == []
    pairs = {(p.persona, p.identifier, p.sender, p.receiver, p.carrier) for p in find_syncs(requests, cookies).pairs}
    assert pairs == {
        (persona, ident, "amazon-adsystem.com", "adnxs.com", "redirect") for persona, (ident, _) in IDS.items()
    } | {(persona, js, "criteo.com", "rubiconproject.com", "url") for persona, (_, js) in IDS.items()}


def test_not_a_database_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "crawl-data.sqlite"
    bad.write_text("not sqlite at all, just text\n" * 100)
    with pytest.raises(Exception) as caught:
        import_openwpm(bad, "health", tmp_path / "out")
    assert str(caught.value).startswith(f"{bad}: not an SQLite database")
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(Exception, match="no http_requests table"):
        import_openwpm(empty, "health", tmp_path / "out")


@pytest.fixture
def harness_main(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", {m: cli.COMMAND_MODULES[m] for m in ["harness.cli.crawl_cmd"]})
    return cli.main


def test_crawl_sync_command_writes_tables_and_lists_partners(harness_main, crawl: Path, tmp_path: Path, capsys):
    assert harness_main(["crawl", "sync", str(crawl), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["partners_of"] == "amazon-adsystem.com" and doc["pairs"] == 4
    assert [(p["domain"], p["receives"], p["sends"], p["personas"]) for p in doc["partners"]] == [
        ("adnxs.com", 2, 0, ["health", "vanilla"])
    ]
    assert len(read_syncs(crawl)) == 4
    frame = pd.read_parquet(crawl / "tables" / "sync.parquet")
    assert frame["time_ns"].dtype == "int64" and set(frame["carrier"]) == {"redirect", "url"}
    assert (crawl / "sync.jsonl").stat().st_mode & 0o077 == 0
    assert harness_main(["crawl", "sync", str(crawl), "--partners-of", "criteo.com", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["domain"], r["receives"]) for r in rows] == [("rubiconproject.com", "2")]
    assert harness_main(["crawl", "sync", str(crawl)]) == 0
    assert "adnxs.com" in capsys.readouterr().out


def test_crawl_import_openwpm_command_and_bad_records(harness_main, tmp_path: Path, capsys):
    db = openwpm_db(tmp_path / "c.sqlite", *IDS["health"])
    out = tmp_path / "crawl"
    assert harness_main(["crawl", "import", "openwpm", str(db), "--persona", "health", "-o", str(out)]) == 0
    assert "4 requests, 1 cookie writes, 1 visits" in capsys.readouterr().out
    with (out / "health" / "requests.jsonl").open("a") as fh:
        fh.write('{"visit_id": "health/1"}\n')
    assert harness_main(["crawl", "sync", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out / 'health' / 'requests.jsonl'}:5:" in err
    assert harness_main(["crawl", "sync", str(tmp_path / "missing")]) == 1
    assert "not a crawl directory" in capsys.readouterr().err
