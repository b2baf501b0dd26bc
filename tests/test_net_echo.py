"""The real Echo captures: endpoints named, attributed and flagged as the classify lists say."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.classify import classify_name
from harness.cli.main import main

JOKE_NAMES = {
    "unagi-na.amazon.com",
    "spectrum.s3.amazonaws.com",
    "kindle-time.amazon.com",
    "d3p8zr0ffa9t17.cloudfront.net",
}


def endpoints(capsys, *args: str) -> dict:
    assert main(["net", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_joke_capture_names_and_classifies_the_echo_endpoints(echo_captures: Path, capsys) -> None:
    result = endpoints(capsys, str(echo_captures / "tell_me_a_joke_5x30s.pcapng"), "--device", "192.168.86.40")
    by_name = {e["endpoint_id"]: e for e in result["endpoints"]}
    assert JOKE_NAMES <= set(by_name)
    assert by_name["unagi-na.amazon.com"]["name_sources"] == ["sni"]
    assert by_name["unagi-na.amazon.com"]["flows"] >= 15  # one TLS connection per voice request and more
    assert by_name["unagi-na.amazon.com"]["organization"] == "Amazon"
    for name in JOKE_NAMES:
        c = classify_name(name)
        e = by_name[name]
        assert (e["registrable_domain"], e["organization"], e["party"], e["category"], e["ad_or_tracking"]) == (
            c.registrable_domain,
            c.organization,
            c.party,
            c.category,
            c.ad_or_tracking,
        )
    for e in result["endpoints"]:
        assert set(e) >= {
            "endpoint_id",
            "registrable_domain",
            "organization",
            "party",
            "category",
            "ad_or_tracking",
            "flows",
            "bytes_up",
            "bytes_down",
            "first_capture_ns",
            "last_capture_ns",
        }
        assert 1540000000 * 10**9 < e["first_capture_ns"] <= e["last_capture_ns"] < 1541000000 * 10**9
    assert result["warnings"] == []


def test_device_is_guessed_when_not_given(echo_captures: Path, capsys) -> None:
    result = endpoints(capsys, str(echo_captures / "what_is_the_weather_5x30s.pcapng"))
    assert result["device"] == "10.63.7.79"
    assert any("assuming 10.63.7.79" in w for w in result["warnings"])
    assert sum(e["bytes_up"] for e in result["endpoints"]) > 100_000


def test_both_captures_as_one_run_and_table_output(echo_captures: Path, capsys, tmp_path: Path) -> None:
    files = [str(p) for p in sorted(echo_captures.glob("*.pcapng"))]
    assert main(["net", *files, "--device", "192.168.86.40", "--flows", str(tmp_path / "flows.csv")]) == 0
    out = capsys.readouterr().out
    assert "d3p8zr0ffa9t17.cloudfront.net" in out and "unagi-na.amazon.com" in out

    flows = pd.read_csv(tmp_path / "flows.csv")
    assert set(flows["local_ip"]) >= {"192.168.86.40", "10.63.7.79"}
    assert flows.loc[flows["device"], "local_ip"].eq("192.168.86.40").all()
