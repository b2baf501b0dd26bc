"""Classification results remembered on disk: used when valid, ignored when anything they depend on changed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.classify import Classifier
from harness.classify import memo as memo_module
from harness.net import synth

REPO = Path(__file__).resolve().parents[1]


def _list(path: Path, name: str, category: str = "advertising") -> Path:
    path.write_text(f"endpoints:\n  - name: {name}\n    category: {category}\n")
    return path


def _memo_file(folder: Path, kind: str, extra: tuple[Path, ...] = ()) -> Path:
    return folder / f"{kind}-{memo_module.digest(extra)}.json"


def test_a_result_is_written_private_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    fresh = Classifier().classify_name("ads.example.com")
    Classifier().save()  # no name worked out: no names memo written
    assert not _memo_file(tmp_path / "cache", "names").exists()
    first = Classifier()
    first.classify_name("ads.example.com")
    first.save()
    path = _memo_file(tmp_path / "cache", "names")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["ads.example.com"] == fresh.to_dict()
    assert Classifier().classify_name("ads.example.com") == fresh


def test_a_remembered_result_is_used_until_a_list_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    user = _list(tmp_path / "mine.yaml", "tracker.example")
    planted = Classifier([user]).classify_name("tracker.example").to_dict() | {"category": "voice"}
    _memo_file(tmp_path, "names", (user,)).write_text(json.dumps({"tracker.example": planted}))
    assert Classifier([user]).classify_name("tracker.example").category == "voice"  # read from the memo
    _list(user, "tracker.example", "tracking")  # changed: its size and time are part of the digest
    again = Classifier([user]).classify_name("tracker.example")
    assert again.category == "tracking"  # what the changed list says


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_a_damaged_memo_is_ignored_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    path = _memo_file(tmp_path, "names")
    path.write_bytes(content)
    classifier = Classifier()
    expected = classifier.classify_name("example.org")
    classifier.save()
    assert json.loads(path.read_text())["example.org"] == expected.to_dict()


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(blocker / "cache"))
    classifier = Classifier()
    assert classifier.classify_name("example.net").registrable_domain == "example.net"
    classifier.save()  # no exception


def _net(capture: Path, cache: str) -> bytes:
    env = {**os.environ, "HARNESS_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "harness.cli.main",
        "net",
        str(capture),
        "--device",
        "192.168.1.20",
        "--format",
        "json",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=120).stdout


def _named_capture(path: Path) -> Path:
    """Hellos to listed, unlisted and shared-hosting names, and traffic to an address never named."""
    dev, dev_mac, gw_mac = "192.168.1.20", "02:00:00:00:00:20", "02:00:00:00:00:01"
    names = ["device-metrics-us.amazon.com", "ads.doubleclick.net", "d1.cloudfront.net", "unlisted.example"]
    frames = []
    for port, name in enumerate(names, 40000):
        hello = synth.tcp(port, 443, synth.client_hello(name))
        frames.append(synth.ethernet(dev_mac, gw_mac, 0x0800, synth.ipv4(dev, f"52.94.{port % 250}.7", 6, hello)))
    bare = synth.udp(50000, 123, bytes(48))
    frames.append(synth.ethernet(dev_mac, gw_mac, 0x0800, synth.ipv4(dev, "8.8.4.4", 17, bare)))
    path.write_bytes(synth.pcap_bytes((1_700_000_000 * 10**9 + i * 10**6, f) for i, f in enumerate(frames)))
    return path


def test_harness_net_gives_the_same_endpoints_cold_warm_and_without_memo(tmp_path: Path) -> None:
    capture = _named_capture(tmp_path / "named.pcap")
    cache = tmp_path / "cache"
    cold = _net(capture, str(cache))
    memos = {p.name: p.read_bytes() for p in cache.iterdir()}
    assert sorted(name.rsplit("-", 1)[0] for name in memos) == ["names", "networks", "shared-hosting"]
    warm = _net(capture, str(cache))
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == memos  # everything was remembered
    off = _net(capture, "off")
    assert cold == warm == off
    endpoints = {e["endpoint_id"]: e for e in json.loads(cold)["endpoints"]}
    assert endpoints["ads.doubleclick.net"]["ad_or_tracking"]
    assert endpoints["device-metrics-us.amazon.com"]["party"] == "platform"
    assert endpoints["d1.cloudfront.net"]["party"] == "unknown"  # a customer's name on shared hosting
    assert endpoints["8.8.4.4"]["network"] == "Google"
