"""QUIC Initial packets: the server name (SNI) in a client's ClientHello.

A client's Initial packets (RFC 9000 section 17.2.2) are protected with keys that anyone can
derive from the Destination Connection ID the client chose (RFC 9001 section 5.2; QUIC v2:
RFC 9369), so a capture reveals their content without secrets. The ClientHello travels in
CRYPTO frames, possibly over several Initial packets of one connection: it is reassembled by
offset per connection ID and handed to the TLS parser (:func:`harness.net.tls.handshake_sni`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from hashlib import sha256

from harness.net.tls import MAX_HELLO, handshake_sni

V1, V2 = 0x00000001, 0x6B3343CF
MIN_PACKET = 7 + 1 + 1 + 4 + 16  # fixed header fields, token and length bytes, pn room, sample
MAX_CID = 20
MAX_COALESCED = 8
PADDING, PING, ACK, ACK_ECN, CRYPTO, CLOSE, CLOSE_APP = 0x00, 0x01, 0x02, 0x03, 0x06, 0x1C, 0x1D


@dataclass(frozen=True)
class Version:
    """What differs between QUIC versions for Initial packets."""

    salt: bytes
    label: bytes  # prefix of the key, iv and hp labels
    initial: int  # long header packet type bits of Initial
    retry: int


VERSIONS = {
    V1: Version(bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), b"quic ", 0, 3),
    V2: Version(bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), b"quicv2 ", 1, 0),
}


class Malformed(ValueError):
    """A packet or frame that cannot be read."""


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label of TLS 1.3 (RFC 8446 section 7.1) with an empty context, length <= 32."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\0"
    return hmac.new(secret, info + b"\x01", sha256).digest()[:length]


def client_secret(version: int, dcid: bytes) -> bytes:
    """The client's Initial secret for a connection whose client chose ``dcid``."""
    initial = hmac.new(VERSIONS[version].salt, dcid, sha256).digest()  # HKDF-Extract
    return _expand_label(initial, b"client in", 32)


def client_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(AEAD key, IV, header protection key) of the client's Initial packets."""
    secret, label = client_secret(version, dcid), VERSIONS[version].label
    return (
        _expand_label(secret, label + b"key", 16),
        _expand_label(secret, label + b"iv", 12),
        _expand_label(secret, label + b"hp", 16),
    )


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A variable-length integer (RFC 9000 section 16) at ``pos``: (value, next position)."""
    if pos >= len(buf):
        raise Malformed("varint past the end")
    size = 1 << (buf[pos] >> 6)
    if pos + size > len(buf):
        raise Malformed("varint past the end")
    return int.from_bytes(buf[pos : pos + size], "big") & ((1 << (8 * size - 2)) - 1), pos + size


@dataclass(frozen=True)
class LongHeader:
    """A long header packet inside a datagram: ``start``/``end`` bound it, ``pn_offset`` is
    where its (protected) packet number starts."""

    version: int
    kind: int
    dcid: bytes
    scid: bytes
    start: int
    pn_offset: int
    end: int


def long_header(dg: bytes, start: int) -> LongHeader | None:
    """The long header packet at ``start`` of a known version with a length field (Initial,
    0-RTT, Handshake); None for anything else (short header, Retry, other versions)."""
    first = dg[start]
    if first & 0xC0 != 0xC0 or start + 7 > len(dg):
        return None
    version = int.from_bytes(dg[start + 1 : start + 5], "big")
    if version not in VERSIONS:
        return None
    kind = (first >> 4) & 3
    if kind == VERSIONS[version].retry:
        return None
    pos = start + 5
    ids = []
    for _ in range(2):
        size = dg[pos]
        if size > MAX_CID or pos + 1 + size > len(dg):
            raise Malformed("connection ID too long")
        ids.append(bytes(dg[pos + 1 : pos + 1 + size]))
        pos += 1 + size
    if kind == VERSIONS[version].initial:
        token, pos = varint(dg, pos)
        pos += token
    length, pos = varint(dg, pos)
    if pos + length > len(dg):
        raise Malformed("packet longer than its datagram")
    return LongHeader(version, kind, ids[0], ids[1], start, pos, pos + length)


def open_packet(dg: bytes, h: LongHeader, keys: tuple[bytes, bytes, bytes]) -> bytes | None:
    """The decrypted payload of a protected long header packet, or None if it does not open."""
    # imported here: reading processes start without the cipher library, few packets need it
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, iv, hp = keys
    if h.pn_offset + 4 + 16 > h.end:
        raise Malformed("packet too short for a header protection sample")
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(dg[h.pn_offset + 4 : h.pn_offset + 20]) + encryptor.finalize()
    first = dg[h.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    pn = bytes(b ^ m for b, m in zip(dg[h.pn_offset : h.pn_offset + pn_len], mask[1:], strict=False))
    header = bytes([first]) + dg[h.start + 1 : h.pn_offset] + pn
    # Initial packet numbers of a first flight are small: the truncated number is the number
    nonce = (int.from_bytes(iv, "big") ^ int.from_bytes(pn, "big")).to_bytes(12, "big")
    try:
        return AESGCM(key).decrypt(nonce, bytes(dg[h.pn_offset + pn_len : h.end]), header)
    except InvalidTag:
        return None


def crypto_frames(payload: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of the CRYPTO frames of an Initial packet's payload. Frames an Initial may
    carry are walked; anything else ends the walk (what was found before it is kept)."""
    found: list[tuple[int, bytes]] = []
    pos = 0
    try:
        while pos < len(payload):
            kind, pos = varint(payload, pos)
            if kind == PADDING:
                pos = len(payload) - len(payload[pos:].lstrip(b"\0"))
            elif kind in (ACK, ACK_ECN):
                _, pos = varint(payload, pos)  # largest acknowledged
                _, pos = varint(payload, pos)  # delay
                ranges, pos = varint(payload, pos)
                for _ in range(1 + 2 * ranges + (3 if kind == ACK_ECN else 0)):
                    _, pos = varint(payload, pos)  # each consumes a byte: bounded by the payload
            elif kind == CRYPTO:
                offset, pos = varint(payload, pos)
                size, pos = varint(payload, pos)
                if pos + size > len(payload):
                    break
                found.append((offset, payload[pos : pos + size]))
                pos += size
            elif kind in (CLOSE, CLOSE_APP):
                _, pos = varint(payload, pos)  # error code
                if kind == CLOSE:
                    _, pos = varint(payload, pos)  # frame type
                reason, pos = varint(payload, pos)
                pos += reason
            elif kind != PING:
                break
    except Malformed:
        pass
    return found


@dataclass
class _Hello:
    keys: tuple[bytes, bytes, bytes]
    fragments: dict[int, bytes] = field(default_factory=dict)
    stored: int = 0

    def add(self, offset: int, data: bytes) -> None:
        if offset + len(data) <= MAX_HELLO and self.stored + len(data) <= 2 * MAX_HELLO:
            self.fragments[offset] = data
            self.stored += len(data)

    def message(self) -> bytes | None:
        """The whole ClientHello message once its bytes from offset 0 are all there."""
        out = bytearray()
        for offset in sorted(self.fragments):
            if offset > len(out):
                break
            data = self.fragments[offset]
            out += data[len(out) - offset :]
        if len(out) < 4:
            return None
        need = 4 + int.from_bytes(out[1:4], "big")
        if need > MAX_HELLO:
            return b""  # too large to follow: done, unnamed
        return bytes(out[:need]) if len(out) >= need else None


class InitialReader:
    """Reads client Initial packets of many connections and returns each ClientHello's SNI.

    Bounded: at most ``max_pending`` hellos in progress (oldest dropped), each at most
    :data:`~harness.net.tls.MAX_HELLO` bytes from at most ``max_fragments`` CRYPTO frames; the
    connection IDs of finished connections (so that their later packets, and the server's, are
    not tried) are kept up to ``max_done``. ``failed`` counts Initial packets that could not be
    read or decrypted (a server's Initial, a capture starting mid-handshake, damage).
    """

    def __init__(self, max_pending: int = 1024, max_fragments: int = 256, max_done: int = 8192) -> None:
        self.pending: dict[tuple[int, bytes], _Hello] = {}
        self.done: dict[bytes, None] = {}
        self.failed = 0
        self.max_pending, self.max_fragments, self.max_done = max_pending, max_fragments, max_done

    def datagram(self, dg: bytes) -> str | None:
        """The SNI of a ClientHello completed by this UDP payload, else None. Never raises for
        bad input."""
        pos = 0
        try:
            for _ in range(MAX_COALESCED):
                if pos >= len(dg):
                    break
                h = long_header(dg, pos)
                if h is None:
                    break
                if h.kind == VERSIONS[h.version].initial:
                    done, name = self._initial(dg, h)
                    if done:
                        return name
                pos = h.end
        except (Malformed, IndexError):
            self.failed += 1
        return None

    def _initial(self, dg: bytes, h: LongHeader) -> tuple[bool, str | None]:
        """(whether this packet finished a ClientHello, its SNI)."""
        if h.dcid in self.done:
            self._finish(h.scid)  # a server's reply names the ID the client uses next
            return False, None
        key = (h.version, h.dcid)
        hello = self.pending.get(key) or _Hello(client_keys(h.version, h.dcid))
        payload = open_packet(dg, h, hello.keys)
        if payload is None:
            self.failed += 1
            return False, None
        for offset, data in crypto_frames(payload):
            hello.add(offset, data)
        message = hello.message()
        if message is None and len(hello.fragments) < self.max_fragments:
            if key not in self.pending and len(self.pending) >= self.max_pending:
                self.pending.pop(next(iter(self.pending)))
            self.pending[key] = hello
            return False, None
        self.pending.pop(key, None)
        self._finish(h.dcid)
        self._finish(h.scid)
        return True, handshake_sni(message) if message else None

    def _finish(self, cid: bytes) -> None:
        if len(self.done) >= self.max_done:
            self.done.pop(next(iter(self.done)))
        self.done[cid] = None
