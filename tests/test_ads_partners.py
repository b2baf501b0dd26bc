"""``harness ads`` on sync partners: bidders split by partnership with a domain; and the imports
of the study's per-site bid files and Amazon's advertising audiences."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import harness.cli.main as cli
from harness.ads.partners import bidder_domain, bidder_table, from_list
from harness.crawl.records import CrawlBid, SyncPair

T0 = 1_700_000_000


@pytest.fixture
def harness_main(monkeypatch):
    monkeypatch.setattr(
        cli, "COMMAND_MODULES", {m: cli.COMMAND_MODULES[m] for m in ["harness.cli.ads_cmd", "harness.cli.crawl_cmd"]}
    )
    return cli.main


def pair(persona: str, sender: str, receiver: str) -> dict:
    return SyncPair(
        visit_id=f"{persona}/0",
        persona=persona,
        site="https://news.example/",
        time_ns=T0 * 10**9,
        identifier="3f9a2c71e0b84d5a6c11",
        sender=sender,
        receiver=receiver,
        carrier="redirect",
        request_url=f"https://{receiver}/setuid",
    ).model_dump()


def planted_bids(path: Path, seed: int = 0) -> Path:
    """Partners of Amazon (appnexus, rubicon) bid 20x the control for 'health'; the others
    (openx, criteo) bid alike for everyone."""
    rng = np.random.default_rng(seed)
    lines = ["persona,site,visit_time,bidder,cpm,currency"]
    for persona in ("health", "vanilla"):
        for bidder in ("appnexus", "rubicon", "openx", "criteo", "amazon", "weirdbidder"):
            boost = 20.0 if persona == "health" and bidder in ("appnexus", "rubicon") else 1.0
            for i in range(40):
                cpm = boost * float(rng.lognormal(0, 0.3))
                lines.append(f"{persona},site{i}.example,{T0 + i},{bidder},{cpm:.4f},USD")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bidder_table_maps_common_adapters() -> None:
    table = bidder_table()
    assert {code: table[code] for code in ("appnexus", "rubicon", "openx", "ix", "sovrn", "amazon")} == {
        "appnexus": "adnxs.com",
        "rubicon": "rubiconproject.com",
        "openx": "openx.net",
        "ix": "casalemedia.com",
        "sovrn": "lijit.com",
        "amazon": "amazon-adsystem.com",
    }
    assert bidder_domain("YahooAds") == "yahoo.com"  # codes are matched without case
    assert bidder_domain("bids.example-ssp.com") == "example-ssp.com"
    assert bidder_domain("nobody") is None


def test_partner_and_non_partner_bidders_are_compared_apart(harness_main, tmp_path: Path, capsys) -> None:
    bids = planted_bids(tmp_path / "bids.csv")
    sync = tmp_path / "sync.jsonl"
    sync.write_text(
        "".join(
            json.dumps(pair(p, s, r)) + "\n"
            for p in ("health", "vanilla")
            for s, r in (
                ("amazon-adsystem.com", "adnxs.com"),
                ("rubiconproject.com", "amazon-adsystem.com"),
                ("openx.net", "criteo.com"),  # a sync that does not involve Amazon
            )
        )
    )
    args = ["ads", str(bids), "--sync", str(sync), "--format", "json", "--resamples", "300"]
    assert harness_main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["partners_of"] == "amazon-adsystem.com"
    assert result["partners"] == ["adnxs.com", "rubiconproject.com"]
    assert result["bidder_groups"] == {
        "amazon": "self",
        "appnexus": "partner",
        "criteo": "non-partner",
        "openx": "non-partner",
        "rubicon": "partner",
        "weirdbidder": "unknown",
    }
    rows = {row["group"]: row for row in result["by_partnership"]}
    assert set(rows) == {"self", "partner", "non-partner"}
    assert rows["partner"]["n"] == 80 and rows["partner"]["significant"]
    assert 15 < rows["partner"]["ratio"] < 27
    assert harness_main(["ads", str(bids), "--sync", str(sync), "--resamples", "300"]) == 0
    table = capsys.readouterr().out
    assert "by bidder group: partners of amazon-adsystem.com" in table
    assert all(group in table for group in ("partner", "non-partner", "self"))
    assert not rows["non-partner"]["significant"] and 0.8 < rows["non-partner"]["ratio"] < 1.25
    assert any("weirdbidder" in warning for warning in result["warnings"])
    assert harness_main(["ads", str(bids), "--sync", str(sync), "--format", "csv", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(",group") and ",partner\n" in out
    report = tmp_path / "ads.html"
    assert harness_main(["ads", str(bids), "--sync", str(sync), "--resamples", "200", "--report", str(report)]) == 0
    assert "partners of amazon-adsystem.com" in capsys.readouterr().out
    page = report.read_text()
    assert "partners of amazon-adsystem.com (adnxs.com, rubiconproject.com)" in page and re.search(
        r">\s*non-partner\s*</td>", page
    )


def test_a_partner_list_file_and_its_bad_lines(tmp_path: Path) -> None:
    listing = tmp_path / "partners.txt"
    listing.write_text("# Amazon's partners\nib.adnxs.com\n\nrubiconproject.com  # seen twice\n")
    partnership = from_list(listing, "amazon-adsystem.com")
    assert partnership.partners == {"adnxs.com", "rubiconproject.com"}
    assert partnership.group("appnexus") == "partner" and partnership.group("openx") == "non-partner"
    listing.write_text("adnxs.com\nrubicon project\n")
    with pytest.raises(Exception) as caught:
        from_list(listing, "amazon-adsystem.com")
    assert str(caught.value) == f"{listing}:2:1: not a domain name: 'rubicon project' (one domain per line)"


# ----- imports --------------------------------------------------------------------------------------


def bid(bidder: str, cpm: float, unit: str = "div-top") -> dict:
    return {"bidderCode": bidder, "cpm": cpm, "currency": "USD", "adUnitCode": unit, "width": 300, "height": 250}


def test_study_bid_files_per_persona_folder_become_visits(harness_main, tmp_path: Path, capsys) -> None:
    data = tmp_path / "bids"
    for persona, cpm in (("health", 9.5), ("vanilla", 0.4)):
        (data / persona).mkdir(parents=True)
        for site in ("cnn.com", "espn.com"):
            responses = {"div-top": {"bids": [bid("appnexus", cpm)]}, "div-side": {"bids": [bid("ix", cpm, "s")]}}
            (data / persona / f"{site}.json").write_text(json.dumps(responses))
    loose = json.dumps([bid("rubicon", 0.5), {"bidder": "openx", "cpm": -1}], indent=1)
    (data / "vanilla_bbc.co.uk.json").write_text(loose)
    out = tmp_path / "visits.jsonl"
    args = ["crawl", "import", "study-bids", str(data), "-o", str(out), "--time", "2023-05-01T08:00:00Z"]
    assert harness_main(args) == 0
    captured = capsys.readouterr()
    assert "5 visits, 9 bids from 5 files" in captured.out
    line = loose.splitlines().index(" {", 2) + 1  # where the bad bid starts
    assert f"vanilla_bbc.co.uk.json:{line}: cpm: Input should be greater than 0" in captured.err.replace("\n", "")
    visits = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(v["persona"], v["site"]) for v in visits} == {
        ("health", "cnn.com"),
        ("health", "espn.com"),
        ("vanilla", "cnn.com"),
        ("vanilla", "espn.com"),
        ("vanilla", "bbc.co.uk"),
    }
    assert harness_main(["ads", str(out), "--format", "json", "--min-n", "2", "--resamples", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"][0]["kind"] == "prebid" and result["files"][0]["rows"] == 9
    assert [(row["persona"], row["n"], row["n_control"]) for row in result["comparisons"]] == [("health", 4, 5)]


def test_study_bid_file_visit_objects_keep_their_fields_and_bad_json_is_placed(tmp_path: Path, harness_main, capsys):
    one = tmp_path / "x.json"
    one.write_text(
        json.dumps(
            {
                "persona": "dating",
                "url": "https://a.example/",
                "timestamp": T0,
                "getBidResponses": {"u": [bid("ix", 2)]},
            }
        )
    )
    out = tmp_path / "v.jsonl"
    assert harness_main(["crawl", "import", "study-bids", str(one), "-o", str(out)]) == 0
    visit = json.loads(out.read_text())
    assert (visit["persona"], visit["url"], visit["timestamp"]) == ("dating", "https://a.example/", T0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"div": {"bids": [\n  {"bidder": "ix", "cpm": 1,}\n]}}')
    capsys.readouterr()
    assert harness_main(["crawl", "import", "study-bids", str(bad), "-o", str(out), "--persona", "p"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:2:" in err
    nameless = tmp_path / "cnn.com.json"
    nameless.write_text(json.dumps({"div": {"bids": [bid("ix", 1)]}}))
    assert harness_main(["crawl", "import", "study-bids", str(nameless), "-o", str(out)]) == 1
    assert f"{nameless}:1:1: persona" in capsys.readouterr().err


def test_amazon_audience_exports_become_interests(harness_main, tmp_path: Path, capsys) -> None:
    exports = []
    for persona, audiences in (
        ("health", ["Fitness Enthusiasts", "Health & Wellness Shoppers", "In-market: Vitamins"]),
        ("vanilla", ["Movie Lovers"]),
    ):
        amazon = tmp_path / persona / "Advertising.AmazonAudiences.csv"
        amazon.parent.mkdir()
        rows = "".join(f'"{a}"\r\n' for a in audiences)
        amazon.write_bytes(("\ufeffAmazon Audiences in which you are included\r\n" + rows).encode())
        third = tmp_path / persona / "Advertising.3PAudiences.csv"
        third.write_text("Audiences in which you are included via 3rd Parties\nOracle: Runners\n")
        out = tmp_path / f"{persona}-interests.csv"
        assert harness_main(["crawl", "import", "amazon-audiences", str(amazon), str(third), "--persona", persona,
                             "-o", str(out)]) == 0  # fmt: skip
        exports.append(out)
    assert "4 audiences of health" in capsys.readouterr().out
    lines = exports[0].read_text().splitlines()
    assert lines[0] == "persona,interest,category,source"
    assert "health,Fitness Enthusiasts,,amazon" in lines and "health,Oracle: Runners,,third-party" in lines
    assert harness_main(["ads", *map(str, exports), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {row["category"] for row in result["enrichment"]} >= {"Fitness Enthusiasts", "Movie Lovers"}
    wrong = tmp_path / "Advertising.AdvertiserClicks.csv"
    wrong.write_text("\n\nAdvertisers whose ads you clicked\nSome Brand\n")
    assert harness_main(["crawl", "import", "amazon-audiences", str(wrong), "--persona", "x", "-o",
                         str(tmp_path / "o.csv")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{wrong}:3:1: no audience column" in err


def test_a_crawls_bids_and_sync_pairs_are_read_as_they_are(harness_main, tmp_path: Path, capsys) -> None:
    """The crawl's own files (CrawlBid rows with visit_time_ns, sync.jsonl) go straight into `harness ads`."""
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for persona in ("health", "vanilla"):
        for index in range(30):
            for bidder in ("appnexus", "openx"):
                boost = 10.0 if persona == "health" and bidder == "appnexus" else 1.0
                bid = CrawlBid(
                    visit_id=f"{persona}/{index}",
                    persona=persona,
                    site=f"https://site{index}.example/",
                    profile=persona,
                    visit_time_ns=T0 * 10**9 + index * 60 * 10**9 + 123,
                    bidder=bidder,
                    cpm=boost * float(rng.lognormal(0, 0.2)),
                    currency="USD",
                    ad_unit="div-top",
                )
                rows.append(bid.model_dump_json() + "\n")
    (crawl / "bids.jsonl").write_text("".join(rows))
    (crawl / "sync.jsonl").write_text(json.dumps(pair("health", "amazon-adsystem.com", "adnxs.com")) + "\n")
    assert harness_main(["ads", str(crawl / "bids.jsonl"), "--sync", str(crawl), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"][0] == {
        "path": str(crawl / "bids.jsonl"),
        "kind": "bids",
        "format": "jsonl",
        "rows": 120,
        "skipped": 0,
        "no_currency": 0,
    }
    rows = {row["group"]: row for row in result["by_partnership"]}
    assert rows["partner"]["significant"] and 8 < rows["partner"]["ratio"] < 12
    assert not rows["non-partner"]["significant"]
    (crawl / "bids.jsonl").write_text(rows_text := '{"persona": "a", "visit_time_ns": 1.5, "bidder": "x", "cpm": 1}\n')
    assert rows_text and harness_main(["ads", str(crawl / "bids.jsonl"), "--strict"]) == 1
    assert "bids.jsonl:1: visit_time_ns: not a whole number of nanoseconds" in capsys.readouterr().err
