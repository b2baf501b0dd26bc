"""DNS response parsing: which addresses a response names, and by which queried name."""

from __future__ import annotations

import struct

A, CNAME, AAAA = 1, 5, 28
MAX_JUMPS = 32  # compression pointers followed per name; real names need a handful
MAX_CHAIN = 16


class Malformed(ValueError):
    """The message does not parse; callers skip it."""


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) domain name at ``pos``: (lower-case name without trailing dot,
    position after it in the message)."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    try:
        while True:
            size = msg[pos]
            if size == 0:
                pos += 1
                break
            if size >= 0xC0:
                target = ((size & 0x3F) << 8) | msg[pos + 1]
                if end < 0:
                    end = pos + 2
                jumps += 1
                if jumps > MAX_JUMPS or target >= pos:  # pointers must go backwards: no loops
                    raise Malformed("compression loop")
                pos = target
                continue
            if size & 0xC0:
                raise Malformed("reserved label type")
            label = msg[pos + 1 : pos + 1 + size]
            if len(label) != size:
                raise Malformed("label runs past the message")
            labels.append(label)
            pos += 1 + size
    except IndexError:
        raise Malformed("name runs past the message") from None
    return b".".join(labels).decode("ascii", "replace").lower(), (end if end >= 0 else pos)


def parse_response(msg: bytes) -> list[tuple[int, str]]:
    """(address as 128-bit int, name) for every A/AAAA answer of a DNS response.

    The name is the first question's name when the answer's owner is reached from it through
    the CNAME chain, else the owner name. IPv4 addresses are IPv4-mapped. Raises
    :class:`Malformed` on a message that does not parse.
    """
    if len(msg) < 12:
        raise Malformed("short header")
    _, flags, qd, an = struct.unpack_from("!HHHH", msg, 0)
    if not flags & 0x8000 or flags & 0x000F:  # a query, or an error response
        return []
    pos = 12
    question = None
    for _ in range(qd):
        name, pos = read_name(msg, pos)
        pos += 4
        question = question or name
    cnames: dict[str, str] = {}
    addresses: list[tuple[int, str]] = []
    for _ in range(an):
        owner, pos = read_name(msg, pos)
        if pos + 10 > len(msg):
            raise Malformed("cut resource record")
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", msg, pos)
        pos += 10
        rdata = msg[pos : pos + rdlen]
        if len(rdata) != rdlen:
            raise Malformed("cut record data")
        if rtype == A and rdlen == 4:
            addresses.append((0xFFFF00000000 | int.from_bytes(rdata, "big"), owner))
        elif rtype == AAAA and rdlen == 16:
            addresses.append((int.from_bytes(rdata, "big"), owner))
        elif rtype == CNAME:
            cnames[owner] = read_name(msg, pos)[0]
        pos += rdlen
    chain = set()
    if question:
        name = question
        for _ in range(MAX_CHAIN):
            chain.add(name)
            if name not in cnames:
                break
            name = cnames[name]
    return [(addr, question if owner in chain else owner) for addr, owner in addresses]
