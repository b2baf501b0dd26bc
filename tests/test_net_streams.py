"""TCP stream reassembly for naming, and field readings fixed by kind, on captures built here."""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.net import read_packets, read_traffic, synth
from harness.net.streams import STREAM_CAP

T0 = 1_700_000_000 * 10**9
DEV, GW, SRV, SRV2 = "192.168.1.20", "192.168.1.1", "198.51.100.7", "203.0.113.9"
DM, GM = "02:00:00:00:00:20", "02:00:00:00:00:01"
SYN, ACK_PSH = 0x02, 0x18


def up(dst: str, seg: bytes, proto: int = 6) -> bytes:
    return synth.ethernet(DM, GM, 0x0800, synth.ipv4(DEV, dst, proto, seg))


def down(src: str, seg: bytes, proto: int = 6) -> bytes:
    return synth.ethernet(GM, DM, 0x0800, synth.ipv4(src, DEV, proto, seg))


def read(tmp_path: Path, frames: list[bytes], **kwargs):
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0 + i * 10**6, f) for i, f in enumerate(frames)]))
    return read_traffic([path], DEV, **kwargs)


def names(t) -> dict[int, tuple[str | None, str]]:
    return {int(r.local_port): (r.name, r.name_source) for r in t.flows.itertuples() if r.protocol == "tcp"}


def segments(data: bytes, cuts: list[int], seq: int = 1001) -> list[tuple[int, bytes]]:
    """(seq, bytes) of ``data`` cut at the offsets in ``cuts``."""
    bounds = [0, *cuts, len(data)]
    return [(seq + a, data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def client(parts: list[tuple[int, bytes]], port: int = 1000, dst: str = SRV, dport: int = 443) -> list[bytes]:
    return [up(dst, synth.tcp(port, dport, data, seq=seq)) for seq, data in parts]


def dns_over_tcp(*messages: bytes) -> bytes:
    return b"".join(struct.pack("!H", len(m)) + m for m in messages)


def test_dns_over_tcp_answer_split_one_byte_then_the_rest(tmp_path: Path) -> None:
    answer = synth.dns_response("split.example.com", [("split.example.com", "A", SRV)])
    stream = dns_over_tcp(answer)
    frames = [down(GW, synth.tcp(53, 5000, data, seq=seq)) for seq, data in segments(stream, [1])]
    t = read(tmp_path, [*frames, up(SRV, synth.tcp(1000, 443, b"x"))])
    assert names(t)[1000] == ("split.example.com", "dns")
    assert not any("malformed" in w for w in t.warnings)


def test_large_dns_over_tcp_answer_over_two_segments(tmp_path: Path) -> None:
    records = [("big.example.com", "A", f"198.51.100.{i}") for i in range(1, 120)]
    stream = dns_over_tcp(synth.dns_response("big.example.com", records))
    assert len(stream) > 1900
    frames = [down(GW, synth.tcp(53, 5000, data, seq=seq)) for seq, data in segments(stream, [1400])]
    t = read(tmp_path, [*frames, up("198.51.100.119", synth.tcp(1000, 443, b"x"))])
    assert names(t)[1000] == ("big.example.com", "dns")


def test_two_dns_messages_in_one_segment(tmp_path: Path) -> None:
    stream = dns_over_tcp(
        synth.dns_response("one.example.com", [("one.example.com", "A", SRV)], ident=1),
        synth.dns_response("two.example.com", [("two.example.com", "A", SRV2)], ident=2),
    )
    t = read(
        tmp_path,
        [
            down(GW, synth.tcp(53, 5000, stream, seq=7)),
            up(SRV, synth.tcp(1000, 443, b"x")),
            up(SRV2, synth.tcp(1001, 443, b"x")),
        ],
    )
    assert names(t)[1000] == ("one.example.com", "dns")
    assert names(t)[1001] == ("two.example.com", "dns")


def test_http_host_in_the_second_segment(tmp_path: Path) -> None:
    request = b"GET /t?" + b"u" * 1700 + b" HTTP/1.1\r\nHost: Tracker.Example.NET\r\nAccept: */*\r\n\r\n"
    cut = request.index(b"\r\n") + 2  # the request line alone first
    t = read(tmp_path, client(segments(request, [cut]), dport=80))
    assert names(t)[1000] == ("tracker.example.net", "http")


@pytest.mark.parametrize("order", [[0, 2, 1, 3], [0, 3, 2, 1]])
def test_client_hello_out_of_order_after_syn(tmp_path: Path, order: list[int]) -> None:
    hello = synth.client_hello("ooo.example.com", padding=900)
    parts = [(1000, b""), *segments(hello, [300, 700])]  # the SYN, then three segments
    frames = [
        up(SRV, synth.tcp(1000, 443, data, seq=seq, flags=SYN if not data else ACK_PSH))
        for seq, data in (parts[i] for i in order)
    ]
    assert names(read(tmp_path, frames))[1000] == ("ooo.example.com", "sni")


@pytest.mark.parametrize("record", [1, 7, 100])
def test_client_hello_over_many_small_records(tmp_path: Path, record: int) -> None:
    hello = synth.client_hello("records.example.com")
    stream = synth.tls_records(hello[5:], record)  # the same handshake message, cut into tiny records
    t = read(tmp_path, client(segments(stream, list(range(50, len(stream), 50)))))
    assert names(t)[1000] == ("records.example.com", "sni")


def test_retransmitted_overlap_with_other_bytes_first_copy_wins(tmp_path: Path) -> None:
    request = b"GET / HTTP/1.1\r\nHost: first.example.com\r\n\r\n"
    forged = b"GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n"
    syn = up(SRV, synth.tcp(1000, 80, b"", seq=1000, flags=SYN))
    frames = [
        syn,
        up(SRV, synth.tcp(1000, 80, request[10:], seq=1011)),  # arrives first, out of order
        up(SRV, synth.tcp(1000, 80, forged[5:], seq=1006)),  # a retransmission overlapping it, other bytes
        up(SRV, synth.tcp(1000, 80, request[:10], seq=1001)),  # the gap filled
    ]
    assert names(read(tmp_path, frames))[1000] == ("first.example.com", "http")


def test_stream_beyond_the_cap_is_not_read(tmp_path: Path) -> None:
    late = up(SRV, synth.tcp(1000, 443, synth.client_hello("late.example.com"), seq=1001 + STREAM_CAP))
    t = read(tmp_path, [up(SRV, synth.tcp(1000, 443, b"", seq=1000, flags=SYN)), late])
    assert names(t)[1000] == (None, "none")


def test_incomplete_stream_is_counted(tmp_path: Path) -> None:
    hello = synth.client_hello("gap.example.com", padding=600)
    t = read(tmp_path, client([segments(hello, [200, 400])[i] for i in (0, 2)]))  # the middle one lost
    assert names(t)[1000] == (None, "none")
    assert any(w.startswith("1 TCP stream directions were left incomplete") for w in t.warnings)


def certificate(cn: str, sans: list[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    "cn,sans,expected",
    [
        ("api.example.org", ["api.example.org"], "api.example.org"),
        ("Not a host", ["*.cdn.example.org"], "cdn.example.org"),
    ],
)
def test_server_certificate_names_an_unnamed_flow_and_its_peers(
    tmp_path: Path, cn: str, sans: list[str], expected: str
) -> None:
    server_hello = b"\x02\x00\x00\x26\x03\x03" + bytes(32) + b"\x00\xc0\x2f\x00"
    stream = synth.tls_records(server_hello + synth.certificate_message(certificate(cn, sans)), 1000)
    frames = [down(SRV, synth.tcp(443, 1000, data, seq=seq)) for seq, data in segments(stream, [600], seq=5001)]
    frames.append(up(SRV, synth.tcp(1001, 443, b"later, no handshake", seq=9)))
    t = read(tmp_path, frames)
    assert names(t)[1000] == (expected, "certificate")
    assert names(t)[1001] == (expected, "certificate_peer")


def test_sni_of_one_flow_names_unnamed_flows_to_the_same_address(tmp_path: Path) -> None:
    t = read(
        tmp_path,
        [
            up(SRV, synth.tcp(1000, 443, b"mid-stream data")),
            up(SRV, synth.tcp(1001, 443, synth.client_hello("v.example.com"))),
            up(SRV2, synth.tcp(1002, 443, b"other")),
        ],
    )
    assert names(t) == {1000: ("v.example.com", "sni_peer"), 1001: ("v.example.com", "sni"), 1002: (None, "none")}


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("incoming", [False, True])
def test_cooked_capture_address_is_the_senders_mac(tmp_path: Path, v2: bool, incoming: bool) -> None:
    ip = (
        synth.ipv4(SRV, DEV, 6, synth.tcp(443, 1000, b"x"))
        if incoming
        else synth.ipv4(DEV, SRV, 6, synth.tcp(1000, 443, b"x"))
    )
    sender = GM if incoming else DM
    frame = (
        synth.sll2(sender, 0x0800, ip, outgoing=not incoming)
        if v2
        else synth.sll(sender, 0x0800, ip, 0 if incoming else 4)
    )
    path = tmp_path / "x.pcap"
    path.write_bytes(synth.pcap_bytes([(T0, frame)], linktype=276 if v2 else 113))
    (p,) = list(read_packets(path, DEV))
    assert (int(p.src_mac[0]), int(p.dst_mac[0])) == (int(sender.replace(":", ""), 16), 0)
    flow = read_traffic([path], DEV).flows.iloc[0]
    assert (flow["local_mac"], flow["remote_mac"]) == ((DM, "") if not incoming else ("", GM))


def test_microseconds_of_one_million_are_read_on(tmp_path: Path) -> None:
    frames = [up(SRV, synth.tcp(1000 + i, 443, b"x")) for i in range(31)]
    data = bytearray(synth.pcap_bytes([(T0 + i * 10**6, f) for i, f in enumerate(frames)]))
    offset = 24 + 10 * (16 + len(frames[0]))  # the 11th record
    struct.pack_into("<I", data, offset + 4, 1_000_000)
    path = tmp_path / "odd.pcap"
    path.write_bytes(bytes(data))
    t = read_traffic([path], DEV)
    assert t.packets == 31
    assert int(t.flows.loc[t.flows["local_port"] == 1010, "first_ns"].iloc[0]) == T0 + 10**9
    (note,) = [w for w in t.warnings if "out of range" in w]
    assert note.startswith(f"{path}: byte {offset}: timestamp fraction of 1000000 microseconds")
