"""On every real Echo capture, nearly all of the Echo's bytes go to endpoints with an owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.classify import classify_flows
from harness.net import read_traffic

# the Echo's address per home, as the captures' READMEs give them
ECHO = {
    "home_a": "10.63.7.79",
    "home_b": "192.168.86.40",
    "what_is_the_weather": "10.63.7.79",
    "tell_me_a_joke": "192.168.86.40",
}


def captures(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pcap*")) + sorted((folder / "dev").glob("*.pcap*"))


def test_echo_bytes_have_owners_on_every_real_capture(echo_captures: Path) -> None:
    files = captures(echo_captures)
    if not files:
        pytest.skip("no capture files in the reference folder")
    short = {}
    for path in files:
        device = next(addr for prefix, addr in ECHO.items() if path.name.startswith(prefix))
        table = classify_flows(read_traffic([path], device).flows)
        named, owned = table.owned_share()
        if owned < 0.99:
            short[path.name] = owned
        assert not table.endpoints.empty
    assert short == {}
