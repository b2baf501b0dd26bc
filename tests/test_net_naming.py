"""Naming: DNS answers (CNAME chains, compression, time), TLS SNI (split hellos), HTTP Host."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.net import read_traffic, synth
from harness.net.dns import Malformed, parse_response
from harness.net.tls import client_hello_sni

T0 = 1_700_000_000 * 10**9
DEV, GW, SRV, SRV2 = "192.168.1.20", "192.168.1.1", "198.51.100.7", "203.0.113.9"
DM, GM = "02:00:00:00:00:20", "02:00:00:00:00:01"


def up(dst: str, seg: bytes, proto: int = 6) -> bytes:
    return synth.ethernet(DM, GM, 0x0800, synth.ipv4(DEV, dst, proto, seg))


def down(src: str, seg: bytes, proto: int = 6) -> bytes:
    return synth.ethernet(GM, DM, 0x0800, synth.ipv4(src, DEV, proto, seg))


def answer(name: str, records: list[tuple[str, str, str]]) -> bytes:
    return down(GW, synth.udp(53, 5353, synth.dns_response(name, records)), 17)


def traffic(tmp_path: Path, frames: list[bytes]):
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0 + i * 10**6, f) for i, f in enumerate(frames)]))
    return read_traffic([path], DEV)


def names_by_port(t) -> dict[int, tuple[str | None, str]]:
    rows = t.flows[t.flows["protocol"] == "tcp"]
    return {int(r.local_port): (r.name, r.name_source) for r in rows.itertuples()}


def test_cname_chain_names_address_with_first_queried_name() -> None:
    msg = synth.dns_response(
        "api.example.com",
        [
            ("api.example.com", "CNAME", "a.edge.example.net"),
            ("a.edge.example.net", "CNAME", "b.cdn.example.org"),
            ("b.cdn.example.org", "A", SRV),
            ("b.cdn.example.org", "AAAA", "2001:db8::7"),
        ],
    )
    found = parse_response(msg)
    assert [name for _, name in found] == ["api.example.com", "api.example.com"]
    assert found[0][0] == 0xFFFF00000000 | int.from_bytes(bytes([198, 51, 100, 7]), "big")


def test_unrelated_owner_keeps_its_own_name() -> None:
    msg = synth.dns_response("a.example.com", [("other.example.com", "A", SRV)])
    assert parse_response(msg) == [(0xFFFF00000000 | 0xC6336407, "other.example.com")]


@pytest.mark.parametrize(
    "msg",
    [
        b"\x00\x01\x81\x80\x00\x01\x00\x01" + b"\x00" * 4 + b"\xc0\x0c",  # pointer to itself
        b"\x00\x01\x81\x80\x00\x01\x00\x01" + b"\x00" * 4 + b"\x05abc",  # label cut short
        synth.dns_response("a.example.com", [("a.example.com", "A", SRV)])[:-3],  # record cut
        b"\x00\x01",
    ],
)
def test_malformed_dns_raises_malformed(msg: bytes) -> None:
    with pytest.raises(Malformed):
        parse_response(msg)


def test_malformed_dns_in_capture_is_skipped_with_a_warning(tmp_path: Path) -> None:
    bad = down(GW, synth.udp(53, 5353, b"\x00\x01\x81\x80\x00\x01\x00\x01" + b"\x00" * 4 + b"\xc0\x0c"), 17)
    good = answer("ok.example.com", [("ok.example.com", "A", SRV)])
    t = traffic(tmp_path, [bad, good, up(SRV, synth.tcp(1000, 80, b"x"))])
    assert names_by_port(t)[1000] == ("ok.example.com", "dns")
    assert any("malformed DNS" in w for w in t.warnings)


def test_repeated_responses_count_and_name_as_often_as_they_come(tmp_path: Path) -> None:
    # responses equal but for their ID are parsed once: every copy must still count
    bad = b"\x00\x01\x81\x80\x00\x01\x00\x01" + b"\x00" * 4 + b"\xc0\x0c"
    frames = [down(GW, synth.udp(53, 5353, bytes([i]) + bad[1:]), 17) for i in range(3)]
    first = synth.dns_response("one.example.com", [("one.example.com", "A", SRV)], ident=1)
    other = synth.dns_response("two.example.com", [("two.example.com", "A", SRV)], ident=2)
    again = synth.dns_response("one.example.com", [("one.example.com", "A", SRV)], ident=3)
    for port, msg in enumerate([first, other, again], 1000):
        frames += [down(GW, synth.udp(53, 5353, msg), 17), up(SRV, synth.tcp(port, 443, b"x"))]
    t = traffic(tmp_path, frames)
    names = names_by_port(t)
    assert [names[p][0] for p in (1000, 1001, 1002)] == ["one.example.com", "two.example.com", "one.example.com"]
    assert "3 malformed DNS responses were skipped" in t.warnings


def test_dns_names_are_time_aware(tmp_path: Path) -> None:
    t = traffic(
        tmp_path,
        [
            up(SRV, synth.tcp(1000, 443, b"early")),  # before any answer: not named
            answer("first.example.com", [("first.example.com", "A", SRV)]),
            up(SRV, synth.tcp(1001, 443, b"x")),
            answer("second.example.com", [("second.example.com", "A", SRV)]),
            up(SRV, synth.tcp(1002, 443, b"x")),
        ],
    )
    names = names_by_port(t)
    assert names[1000] == (None, "none")
    assert names[1001] == ("first.example.com", "dns")
    assert names[1002] == ("second.example.com", "dns")


def test_sni_beats_dns_and_http_host_names_a_flow(tmp_path: Path) -> None:
    get = b"GET /x HTTP/1.1\r\nHost: Media.Example.COM:8080\r\nAccept: */*\r\n\r\n"
    t = traffic(
        tmp_path,
        [
            answer("dns.example.com", [("dns.example.com", "A", SRV)]),
            up(SRV, synth.tcp(1000, 443, synth.client_hello("sni.example.com"))),
            up(SRV2, synth.tcp(1001, 80, get)),
        ],
    )
    names = names_by_port(t)
    assert names[1000] == ("sni.example.com", "sni")
    assert names[1001] == ("media.example.com", "http")


@pytest.mark.parametrize("later_order", [(1, 2), (2, 1)])
def test_client_hello_split_over_segments(tmp_path: Path, later_order: tuple[int, int]) -> None:
    hello = synth.client_hello("split.example.com", padding=600)
    parts = [(100, hello[:200]), (300, hello[200:400]), (500, hello[400:])]
    order = [0, *later_order]  # the later segments may arrive out of order
    frames = [up(SRV, synth.tcp(1000, 443, parts[i][1], seq=parts[i][0])) for i in order]
    frames.insert(1, down(SRV, synth.tcp(443, 1000, b"", flags=0x10)))  # an ACK in between
    frames.insert(2, up(SRV2, synth.tcp(1001, 443, b"unrelated")))
    assert names_by_port(traffic(tmp_path, frames))[1000] == ("split.example.com", "sni")


def test_split_hello_across_batches(tmp_path: Path) -> None:
    hello = synth.client_hello("far.example.com", padding=600)
    filler = [up(SRV2, synth.tcp(2000, 443, bytes(1000)))] * 30
    first, rest = up(SRV, synth.tcp(1000, 443, hello[:300], seq=1)), up(SRV, synth.tcp(1000, 443, hello[300:], seq=301))
    frames = [first, *filler, rest]
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0 + i, f) for i, f in enumerate(frames)]))
    t = read_traffic([path], DEV, chunk=4096)  # several batches in this small file
    assert names_by_port(t)[1000] == ("far.example.com", "sni")


def test_hello_without_sni_and_truncated_hello() -> None:
    assert client_hello_sni(synth.client_hello(None)) is None
    hello = synth.client_hello("x.example.com")
    assert client_hello_sni(hello) == "x.example.com"
    assert client_hello_sni(hello[:-4]) is None
