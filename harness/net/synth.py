"""Synthetic packets and capture files, for the benchmark and the tests.

Builds real wire formats (Ethernet/SLL2/VLAN, IPv4/IPv6, TCP/UDP, DNS responses, TLS
ClientHellos) and writes classic pcap or pcapng bytes; nothing here is used to read captures.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.net import quic

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ethernet(src: str, dst: str, ethertype: int, payload: bytes, vlans: Iterable[int] = ()) -> bytes:
    """An Ethernet frame; ``vlans`` adds 802.1Q tags, outermost first (two tags: QinQ)."""
    vlans = list(vlans)
    tags = b"".join(struct.pack("!HH", 0x88A8 if i == 0 and len(vlans) > 1 else 0x8100, v) for i, v in enumerate(vlans))
    return mac(dst) + mac(src) + tags + struct.pack("!H", ethertype) + payload


def sll2(src_mac: str, ethertype: int, payload: bytes, outgoing: bool = True) -> bytes:
    """A Linux cooked v2 (SLL2) header."""
    return struct.pack("!HHIHBB", ethertype, 0, 1, 1, 4 if outgoing else 0, 6) + mac(src_mac) + b"\0\0" + payload


def sll(src_mac: str, ethertype: int, payload: bytes, packet_type: int = 0) -> bytes:
    """A Linux cooked (SLL) header: packet type (0 to us, 4 outgoing, ...), the sender's MAC."""
    return struct.pack("!HHH", packet_type, 1, 6) + mac(src_mac) + b"\0\0" + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        0x4000,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + payload


def ipv6(src: str, dst: str, proto: int, payload: bytes, hop_by_hop: bool = False) -> bytes:
    """An IPv6 packet, optionally behind a hop-by-hop options extension header."""
    if hop_by_hop:
        payload = bytes([proto, 0]) + b"\x01\x04\0\0\0\0" + payload
        proto = 0
    return (
        struct.pack("!IHBB", 6 << 28, len(payload), proto, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def tcp(sport: int, dport: int, payload: bytes = b"", seq: int = 1, flags: int = 0x18) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def dns_query(name: str, ident: int = 1, qtype: int = 1) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + _name(name) + struct.pack("!HH", qtype, 1)


def dns_response(name: str, answers: list[tuple[str, str, str]], ident: int = 1) -> bytes:
    """A response to ``name``; answers are (owner, type 'A'|'AAAA'|'CNAME', value). Owners equal
    to the question are written as compression pointers to it."""
    msg = bytearray(struct.pack("!HHHHHH", ident, 0x8180, 1, len(answers), 0, 0))
    msg += _name(name) + struct.pack("!HH", 1, 1)
    for owner, rtype, value in answers:
        msg += b"\xc0\x0c" if owner == name else _name(owner)
        if rtype == "A":
            data, code = ipaddress.IPv4Address(value).packed, 1
        elif rtype == "AAAA":
            data, code = ipaddress.IPv6Address(value).packed, 28
        else:
            data, code = _name(value), 5
        msg += struct.pack("!HHIH", code, 1, 300, len(data)) + data
    return bytes(msg)


def client_hello(sni: str | None, padding: int = 0) -> bytes:
    """A TLS 1.2-style ClientHello record with an SNI extension (and optional padding extension)."""
    ext = b""
    if sni is not None:
        host = sni.encode()
        entry = b"\0" + struct.pack("!H", len(host)) + host
        ext += struct.pack("!HHH", 0, len(entry) + 2, len(entry)) + entry
    if padding:
        ext += struct.pack("!HH", 21, padding) + bytes(padding)
    suites = struct.pack("!HHH", 4, 0x1301, 0xC02F)
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + suites + b"\x01\x00" + struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def quic_initial(dcid: bytes, hello: bytes, pn: int = 0, scid: bytes = b"\x01" * 8) -> bytes:
    """A client's QUIC v1 Initial packet carrying ``hello`` (a ClientHello handshake message) in
    one CRYPTO frame, padded to 1200 bytes and protected with the keys ``dcid`` gives."""
    key, iv, hp = quic.client_keys(quic.V1, dcid)
    head = b"\xc3" + quic.V1.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + b"\0"
    size = 1200 - len(head) - 2
    frames = b"\x06\x00" + (0x4000 | len(hello)).to_bytes(2, "big") + hello
    header = head + (0x4000 | size).to_bytes(2, "big") + pn.to_bytes(4, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, frames + bytes(size - 4 - 16 - len(frames)), header)
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sealed[:16]) + enc.finalize()
    out = bytearray(header + sealed)
    out[0] ^= mask[0] & 0x0F
    for i in range(4):
        out[len(header) - 4 + i] ^= mask[1 + i]
    return bytes(out)


def tls_records(handshake: bytes, size: int) -> bytes:
    """Handshake bytes (messages with their 4-byte headers) cut into records of ``size`` bytes."""
    return b"".join(
        b"\x16\x03\x03" + struct.pack("!H", len(part)) + part
        for part in (handshake[i : i + size] for i in range(0, len(handshake), size))
    )


def certificate_message(*ders: bytes) -> bytes:
    """A TLS 1.2 Certificate handshake message carrying the DER certificates, server's first."""
    body = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    body = len(body).to_bytes(3, "big") + body
    return b"\x0b" + len(body).to_bytes(3, "big") + body


def pcap_bytes(
    packets: Iterable[tuple[int, bytes]], linktype: int = 1, nanos: bool = False, big: bool = False
) -> bytes:
    """A classic pcap file of (timestamp ns, frame) records."""
    e = ">" if big else "<"
    out = bytearray(struct.pack(e + "IHHiIII", 0xA1B23C4D if nanos else 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    for ts, frame in packets:
        frac = ts % 1_000_000_000 if nanos else (ts % 1_000_000_000) // 1000
        out += struct.pack(e + "IIII", ts // 1_000_000_000, frac, len(frame), len(frame)) + frame
    return bytes(out)


def _block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += bytes(-len(body) % 4)
    size = 12 + len(body)
    return struct.pack(e + "II", btype, size) + body + struct.pack(e + "I", size)


def pcapng_section(big: bool = False) -> bytes:
    e = ">" if big else "<"
    return _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def pcapng_interface(linktype: int = 1, tsresol: int | None = None, big: bool = False) -> bytes:
    """An IDB; ``tsresol`` is the if_tsresol option byte (6 = us, 9 = ns, 0x80|k = 2^-k)."""
    e = ">" if big else "<"
    opts = b""
    if tsresol is not None:
        opts = struct.pack(e + "HH", 9, 1) + bytes([tsresol, 0, 0, 0]) + struct.pack(e + "HH", 0, 0)
    return _block(1, struct.pack(e + "HHI", linktype, 0, 262144) + opts, e)


def pcapng_packet(iface: int, units: int, frame: bytes, big: bool = False) -> bytes:
    """An EPB with the timestamp in the interface's units."""
    e = ">" if big else "<"
    head = struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(frame), len(frame))
    return _block(6, head + frame, e)


def pcapng_simple(frame: bytes, big: bool = False) -> bytes:
    e = ">" if big else "<"
    return _block(3, struct.pack(e + "I", len(frame)) + frame, e)


def pcapng_unknown(btype: int = 0x0BAD, size: int = 40, big: bool = False) -> bytes:
    return _block(btype, bytes(size), ">" if big else "<")
