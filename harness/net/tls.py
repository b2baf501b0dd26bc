"""TLS handshakes in clear: the ClientHello's server name (SNI) and the server certificate's name."""

from __future__ import annotations

import struct

HANDSHAKE = 22
CLIENT_HELLO = 1
CERTIFICATE = 11
MAX_HELLO = 1 << 16  # a ClientHello larger than this is not worth following


def handshake_messages(stream: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The complete handshake messages (type, whole message with its 4-byte header) at the start of
    a TLS record stream, walked across records of any size, and the stream length needed for the
    next one (0 when a non-handshake record ends the handshake in clear)."""
    out = bytearray()
    messages: list[tuple[int, bytes]] = []
    pos = used = 0
    while True:
        while used + 4 <= len(out) and used + 4 + int.from_bytes(out[used + 1 : used + 4], "big") <= len(out):
            size = 4 + int.from_bytes(out[used + 1 : used + 4], "big")
            messages.append((out[used], bytes(out[used : used + size])))
            used += size
        if pos + 5 > len(stream):
            return messages, pos + 5
        if stream[pos] != HANDSHAKE:
            return messages, 0
        size = int.from_bytes(stream[pos + 3 : pos + 5], "big")
        if pos + 5 + size > len(stream):
            return messages, pos + 5 + size
        out += stream[pos + 5 : pos + 5 + size]
        pos += 5 + size


def handshake_bytes(stream: bytes) -> bytes | None:
    """The first handshake message from a stream of TLS records, or None if incomplete."""
    messages, _ = handshake_messages(stream)
    return messages[0][1] if messages else None


def client_hello_sni(stream: bytes) -> str | None:
    """The SNI host name of a ClientHello at the start of ``stream`` (None if absent or bad)."""
    hs = handshake_bytes(stream)
    return None if hs is None else handshake_sni(hs)


def handshake_sni(hs: bytes) -> str | None:
    """The SNI host name of one ClientHello handshake message (no record header; QUIC carries
    it like this in CRYPTO frames). None if absent, bad or not a ClientHello."""
    if not hs or hs[0] != CLIENT_HELLO:
        return None
    try:
        pos = 4 + 2 + 32
        pos += 1 + hs[pos]  # session id
        pos += 2 + struct.unpack_from("!H", hs, pos)[0]  # cipher suites
        pos += 1 + hs[pos]  # compression methods
        ext_end = pos + 2 + struct.unpack_from("!H", hs, pos)[0]
        pos += 2
        while pos + 4 <= min(ext_end, len(hs)):
            etype, elen = struct.unpack_from("!HH", hs, pos)
            pos += 4
            if etype == 0:
                body = hs[pos : pos + elen]
                p = 2
                while p + 3 <= len(body):
                    kind, size = body[p], struct.unpack_from("!H", body, p + 1)[0]
                    if kind == 0:
                        name = body[p + 3 : p + 3 + size].decode("ascii", "replace").lower().rstrip(".")
                        return name or None
                    p += 3 + size
                return None
            pos += elen
    except (IndexError, struct.error):
        return None
    return None


def certificate_name(hs: bytes) -> str | None:
    """The host name of a Certificate message's first (the server's own) certificate: its subject
    CN when that is a host name, else its first SAN dNSName; a leading ``*.`` is dropped (the
    certificate speaks for the domain). None if absent or unreadable."""
    # imported here: reading processes start without the certificate parser, few flows need it
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        if hs[0] != CERTIFICATE or len(hs) < 10:
            return None
        size = int.from_bytes(hs[7:10], "big")
        cert = x509.load_der_x509_certificate(hs[10 : 10 + size])
    except (IndexError, ValueError):
        return None
    names: list[str] = []
    try:
        names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    except ValueError:
        pass
    try:
        names += cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except (x509.ExtensionNotFound, ValueError):
        pass
    for name in names:
        name = name.strip().lower().rstrip(".").removeprefix("*.")
        if "." in name and " " not in name:
            return name
    return None
