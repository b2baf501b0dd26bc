"""Parts of the crawl that need no browser: sites files, cookies, the journal, launch options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.crawl.browser import chromium_args, set_third_party_cookies
from harness.crawl.cookies import parse_cookie
from harness.crawl.journal import Journal
from harness.crawl.layout import CrawlDir
from harness.crawl.login import login_options
from harness.crawl.manifest import CrawlSettings
from harness.crawl.sites import read_sites
from harness.errors import HarnessError, InputError

from conftest import REPO


def test_sites_file_errors_name_line_and_column(tmp_path: Path) -> None:
    good = tmp_path / "sites.txt"
    good.write_text("# popular sites\n\nhttps://a.example/\n  http://b.example/page?x=1#top\n")
    assert read_sites(good) == ["https://a.example/", "http://b.example/page?x=1#top"]
    bad = tmp_path / "bad.txt"
    bad.write_text("https://a.example/\n   ftp://c.example/\n")
    with pytest.raises(InputError) as caught:
        read_sites(bad)
    assert str(caught.value).startswith(f"{bad}:2:4: not an http(s) URL")
    twice = tmp_path / "twice.txt"
    twice.write_text("https://a.example/\nhttps://a.example/\n")
    with pytest.raises(InputError, match="twice.txt:2:1: listed twice"):
        read_sites(twice)


def test_set_cookie_values_become_cookie_fields() -> None:
    now = 1_700_000_000 * 10**9
    cookie = parse_cookie(
        "uid=abc123; Domain=.adnxs.com; Path=/x; Max-Age=60; Secure; HttpOnly; SameSite=None", "ib.adnxs.com", now
    )
    assert cookie == {
        "domain": "adnxs.com",
        "name": "uid",
        "value": "abc123",
        "path": "/x",
        "expires_ns": now + 60 * 10**9,
        "http_only": True,
        "secure": True,
        "same_site": "None",
    }
    dated = parse_cookie("a=b; Expires=Wed, 21 Oct 2015 07:28:00 GMT", "h.test", now)
    assert dated["domain"] == "h.test" and dated["expires_ns"] == 1445412480 * 10**9
    assert parse_cookie(" ; path=/", "h.test") is None


def _visit(persona: str, index: int, bids: int) -> dict:
    return {"visit_id": f"{persona}/{index}", "persona": persona, "site_index": index, "bids": bids}


def test_a_commit_cut_short_is_completed_once_on_resume(tmp_path: Path) -> None:
    crawl = CrawlDir(tmp_path / "crawl")
    journal = Journal(crawl)
    journal.commit(_visit("p", 0, 1), {"bids": [{"visit_id": "p/0", "cpm": 1.0}]})
    # killed while committing p/1: its pending file is written, 2 of its 3 bids reached the table
    # (the second torn), nothing of its requests, no Visit
    visit = _visit("p", 1, 3)
    rows = {"bids": [{"visit_id": "p/1", "cpm": c} for c in (1.0, 2.0, 3.0)], "requests": [{"visit_id": "p/1"}]}
    crawl.pending_visit("p", 1).write_text(json.dumps({"visit": visit, "rows": rows}))
    with crawl.table("bids").open("a") as fh:
        fh.write('{"visit_id":"p/1","cpm":1.0}\n{"visit_id":"p/1","cp')
    journal.close()

    journal = Journal(crawl)
    assert journal.recover() == 1
    assert journal.recover() == 0
    journal.close()
    bids = [json.loads(line) for line in crawl.table("bids").read_text().splitlines() if line.endswith("}")]
    assert [(b["visit_id"], b["cpm"]) for b in bids] == [("p/0", 1.0), ("p/1", 1.0), ("p/1", 2.0), ("p/1", 3.0)]
    assert [json.loads(line)["visit_id"] for line in crawl.table("visits").read_text().splitlines()] == ["p/0", "p/1"]
    assert crawl.table("requests").read_text().count("p/1") == 1
    assert not list(crawl.pending.iterdir())


def test_third_party_cookie_preference_keeps_the_rest_of_the_profile(tmp_path: Path) -> None:
    prefs = tmp_path / "Default" / "Preferences"
    prefs.parent.mkdir()
    prefs.write_text(json.dumps({"profile": {"name": "Persona"}, "homepage": "about:blank"}))
    set_third_party_cookies(tmp_path, allow=True)
    data = json.loads(prefs.read_text())
    assert data["profile"] == {"name": "Persona", "cookie_controls_mode": 0, "block_third_party_cookies": False}
    assert data["homepage"] == "about:blank"
    set_third_party_cookies(tmp_path, allow=False)
    assert json.loads(prefs.read_text())["profile"]["cookie_controls_mode"] == 1


def test_closed_network_flags_and_the_sandbox_only_off_for_root() -> None:
    args = chromium_args(headless=True, extra=["--x"])
    assert args[0] == "--headless" and args[-1] == "--x"
    assert {"--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync"} <= set(
        args
    )
    assert ("--no-sandbox" in args) == (os.geteuid() == 0)


def test_login_opens_a_visible_browser_on_the_personas_profile(tmp_path: Path) -> None:
    settings = CrawlSettings(browser_args=["--lang=en-US"])
    options = login_options(tmp_path / "p", settings, env={"DISPLAY": ":7"})
    assert options["headless"] is False and "--headless" not in options["args"]
    assert options["user_data_dir"] == str(tmp_path / "p") and options["executable_path"] == settings.executable
    assert "--lang=en-US" in options["args"]
    with pytest.raises(HarnessError, match="no display"):
        login_options(tmp_path / "p", settings, env={})


def test_login_without_a_display_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "crawl", "login", "--persona", "a", "--profiles", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "no display" in done.stderr


def test_crawl_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "harness.cli.main", "crawl", "run"]
    missing = subprocess.run([*run, "--persona", "a"], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2 and "--profiles" in missing.stderr
    sites = tmp_path / "s.txt"
    sites.write_text("http://a.test/\n")
    twice = [*run, str(sites), "--persona", "a", "--persona", "a", "--profiles", str(tmp_path / "p")]
    done = subprocess.run([*twice, "--out", str(tmp_path / "c")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "named twice" in done.stderr
    bad = subprocess.run(
        [*run, str(sites), "--persona", "../x", "--profiles", str(tmp_path / "p"), "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 1 and "names a folder" in bad.stderr


def test_crawl_bid_rows_are_flat_bid_rows_for_harness_ads(tmp_path: Path) -> None:
    from harness.ads import Rates, load_files
    from harness.crawl.records import CrawlBid

    common = {"site": "http://s.test/", "profile": "p", "bidder": "openx", "currency": "USD"}
    time_ns = 1_796_103_967_362_582_041
    bids = [
        CrawlBid(
            visit_id="a/0", persona="a", visit_time_ns=time_ns, cpm=2.5, width=300, height=250, won=True, **common
        ),
        CrawlBid(
            visit_id="c/0", persona="control", visit_time_ns=time_ns + 1, cpm=1.0, **common
        ),  # a video bid: no size
    ]
    assert bids[0].visit_time == "2026-12-01T05:46:07.362582041Z"
    path = tmp_path / "bids.jsonl"
    path.write_text("".join(json.dumps(b.model_dump(mode="json")) + "\n" for b in bids))
    data = load_files([path], Rates(target="USD"))
    assert data.skipped == []
    read = sorted(data.bids, key=lambda b: b.persona)
    assert [(b.persona, b.cpm, b.visit_time_ns, b.width, b.won) for b in read] == [
        ("a", 2.5, time_ns, 300, True),
        ("control", 1.0, time_ns + 1, None, False),
    ]


def test_a_bad_sites_file_is_one_line_naming_the_place_and_no_crawl_starts(tmp_path: Path) -> None:
    sites = tmp_path / "sites.txt"
    sites.write_text("http://a.test/\nnot a url\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["crawl", "run", str(sites), "--persona", "a", "--profiles", str(tmp_path / "p"), "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *command], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr == f"harness: error: {sites}:2:1: not an http(s) URL: 'not a url'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sites.txt"]
