"""A realistic smart-speaker capture, written streaming: an Echo behind an access point.

One device and its gateway on Ethernet (every frame between their two MACs, as a capture on the
access point's wired side sees it). By packets: about 85% TLS over TCP to 1,500 servers
(each connection: handshake with a REAL ClientHello, made by Python's ``ssl`` module over memory
BIOs for one of many host names, a TLS 1.3 server flight, then application data: full-size
segments down, records of a few hundred bytes up, ACKs, FIN), DNS queries and answers through
the gateway, NTP, SSDP multicast, QUIC (client Initials carrying a ClientHello, then short-header
packets). Mean packet about 660 bytes. TCP sequence and acknowledgement numbers advance with the
bytes sent, IPv4 checksums are right, TCP has the timestamp option as Linux sends it.

The file is written in windows of packets: each window's connections start and end inside it
and their packets are interleaved in time order, so any size is written in bounded memory.
``flow_packets`` is the mean TLS connection length: 300 gives ~2,800 TLS connections per 10^6
packets (~19,500 flows with the DNS and QUIC ones); 4 (SYN, SYN-ACK, ACK, ClientHello only) gives
~720,000 flows per 4x10^6 packets (the memory test).
"""

from __future__ import annotations

import ssl
import struct
from pathlib import Path

import numpy as np

from harness.net import synth

DEVICE, GATEWAY = "192.168.1.20", "192.168.1.1"
DEV_MAC, GW_MAC = "68:54:fd:00:01:14", "f0:9f:c2:00:00:01"
SSDP_GROUP, SSDP_MAC = "239.255.255.250", "01:00:5e:7f:ff:fa"
SERVERS = 1500
START_S = 1_760_000_000
RATE = 1000  # packets per second of capture time
WINDOW = 40_000  # packets per window: bounds the writer's memory
MSS = 1448
# registrable domains an Echo and its skills talk to; host names are made under them
DOMAINS = (
    "amazon.com amazonalexa.com media-amazon.com amazonaws.com a2z.com amazon-adsystem.com cloudfront.net "
    "spotify.com scdn.co iheart.com tunein.com pandora.com audible.com doubleclick.net googlesyndication.com "
    "google-analytics.com scorecardresearch.com fitbit.com accuweather.com bbc.co.uk npr.org apple.com "
    "akamaihd.net fastly.net mixpanel.com branch.io crashlytics.com facebook.com adsrvr.org rubiconproject.com"
).split()
LABELS = "api device-metrics-us msh unagi-na arcus avs-alexa-na spectrum cdn edge events log ads t media".split()
# share of packets by kind (TLS connections take the rest, about 85%)
UDP_MIX = {"dns": 0.03, "ntp": 0.005, "ssdp": 0.015, "quic": 0.10}
# TLS body packets after the handshake: (kind, probability)
BODY = {"up": 0.22, "down_full": 0.32, "down_part": 0.09, "ack_up": 0.32, "ack_down": 0.05}
TCP_HEAD, UDP_HEAD = 66, 42


def hostnames(rng: np.random.Generator) -> list[str]:
    """One host name per server, under the registrable domains above."""
    return [
        f"{LABELS[i % len(LABELS)]}{i // len(LABELS)}.{DOMAINS[int(rng.integers(len(DOMAINS)))]}"
        for i in range(SERVERS)
    ]


def client_hello(host: str, ctx: ssl.SSLContext) -> bytes:
    """The first flight of Python's TLS client (OpenSSL) for ``host``: its ClientHello record."""
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def server_flight(rng: np.random.Generator) -> bytes:
    """A TLS 1.3 server's first flight: ServerHello, ChangeCipherSpec, then encrypted records."""
    body = b"\x03\x03" + rng.bytes(32) + b"\x20" + rng.bytes(32) + b"\x13\x01\x00"
    ext = struct.pack("!HHH", 43, 2, 0x0304) + struct.pack("!HHHH", 51, 36, 29, 32) + rng.bytes(32)
    hello = b"\x02" + (len(body) + 2 + len(ext)).to_bytes(3, "big") + body + struct.pack("!H", len(ext)) + ext
    flight = b"\x16\x03\x03" + struct.pack("!H", len(hello)) + hello + b"\x14\x03\x03\x00\x01\x01"
    return flight + b"\x17\x03\x03" + struct.pack("!H", 4096) + rng.bytes(4096)


def _ip_int(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


class _Pool:
    """Payload bytes referenced by (offset, length)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> int:
        self.parts.append(data)
        self.size += len(data)
        return self.size - len(data)

    def array(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.parts), np.uint8)


class Mix:
    """Templates of the mix (hellos, server flights, DNS, NTP, SSDP, QUIC Initials, random bytes)."""

    def __init__(self, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.hosts = hostnames(rng)
        first = 0x34000000 + 0x10000 * np.arange(SERVERS) // 3  # 52.0.0.0 and up: public addresses
        self.server_ip = (first + rng.integers(1, 250, SERVERS)).astype(np.uint32)
        # a few servers get most connections, as in real traffic (Zipf-like)
        weight = 1.0 / np.arange(1, SERVERS + 1) ** 0.9
        self.server_p = rng.permutation(weight / weight.sum())
        pool = _Pool()
        ctx = ssl.create_default_context()  # one context: the hellos differ in SNI, random and key share
        self.random_at = pool.add(rng.bytes(1 << 20))
        self.hello_at = np.array([pool.add(h) for h in (client_hello(x, ctx) for x in self.hosts)], np.int64)
        self.hello_len = np.array([len(p) for p in pool.parts[1:]], np.int64)
        flight = server_flight(rng)
        self.flight_at, self.flight_len = pool.add(flight), len(flight)
        # DNS: a query and its answer (CNAME to an edge name, then A) per host, as UDP payloads
        self.dns = []
        for i, host in enumerate(self.hosts):
            ip = ".".join(str(b) for b in int(self.server_ip[i]).to_bytes(4, "big"))
            edge = f"e{i}.edge.{DOMAINS[i % len(DOMAINS)]}"
            query = synth.dns_query(host, i & 0xFFFF)
            answer = synth.dns_response(host, [(host, "CNAME", edge), (edge, "A", ip)], i & 0xFFFF)
            self.dns.append((pool.add(query), len(query), pool.add(answer), len(answer)))
        self.dns = np.array(self.dns, np.int64)
        ntp = bytes([0x23]) + bytes(47)
        self.ntp_at = pool.add(ntp)
        ssdp = b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
        ssdp += b"MX: 3\r\nST: ssdp:all\r\n\r\n"
        notify = (
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n"
            b"LOCATION: http://192.168.1.20:60000/upnp/desc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
            b"SERVER: Linux/4.9 UPnP/1.0 Echo/1.0\r\n"
            b"USN: uuid:6e3b1c5a-0000-4000-8000-6854fd000114::upnp:rootdevice\r\n\r\n"
        )
        self.ssdp = np.array([(pool.add(ssdp), len(ssdp)), (pool.add(notify), len(notify))], np.int64)
        # QUIC Initials of a QUIC-speaking subset of hosts (one connection ID each)
        self.quic_hosts = np.arange(0, SERVERS, 10)
        self.quic_at = np.array(
            [pool.add(synth.quic_initial(rng.bytes(8), client_hello(self.hosts[h], ctx)[5:])) for h in self.quic_hosts],
            np.int64,
        )
        self.bytes = pool.array()
        self.tcp_head = np.frombuffer(
            synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEVICE, "1.1.1.1", 6, synth.tcp(1, 1) + bytes(12))),
            np.uint8,
        )
        self.udp_head = np.frombuffer(
            synth.ethernet(DEV_MAC, GW_MAC, 0x0800, synth.ipv4(DEVICE, "1.1.1.1", 17, synth.udp(1, 1, b""))), np.uint8
        )


def _put16(h: np.ndarray, col: int, v: np.ndarray) -> None:
    h[:, col] = (v >> 8) & 0xFF
    h[:, col + 1] = v & 0xFF


def _put32(h: np.ndarray, col: int, v: np.ndarray) -> None:
    for k in range(4):
        h[:, col + k] = (v >> (24 - 8 * k)) & 0xFF


def _gather(src: np.ndarray, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indexes into ``src`` of the concatenated slices, and each slice's start in the result."""
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    return np.repeat(at - start, length) + np.arange(int(length.sum()), dtype=np.int64), start


class _Packets:
    """Packets of one window as columns; built per kind, then sorted by a time key."""

    COLS = ("key", "up", "proto", "remote", "lport", "rport", "flags", "seq", "ack", "at", "plen", "mcast")

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in self.COLS}

    def add(self, **cols: np.ndarray) -> None:
        n = len(cols["key"])
        for c in self.COLS:
            v = cols.get(c, 0)
            self.parts[c].append(np.broadcast_to(np.asarray(v, np.int64), (n,)))

    def columns(self) -> dict[str, np.ndarray]:
        cols = {c: np.concatenate(v) for c, v in self.parts.items()}
        order = np.argsort(cols["key"], kind="stable")
        return {c: v[order] for c, v in cols.items()}


def _tls(mix: Mix, rng: np.random.Generator, out: _Packets, target: int, flow_packets: int, port: int) -> int:
    """TLS connections adding up to about ``target`` packets; returns the next client port."""
    lens: list[int] = []
    total = 0
    if target < 4:
        return port
    while total < target:
        n = int(min(4 + rng.geometric(1 / max(flow_packets - 3, 1)) - 1, target - total + 4))
        lens.append(n)
        total += n
    lens_a = np.array(lens, np.int64)
    sessions = len(lens_a)
    server = rng.choice(SERVERS, sessions, p=mix.server_p)
    ports = 49152 + (port + np.arange(sessions)) % 16384
    sess = np.repeat(np.arange(sessions), lens_a)
    first = np.concatenate([[0], np.cumsum(lens_a)[:-1]])
    k = np.arange(total) - np.repeat(first, lens_a)
    last = np.repeat(lens_a, lens_a) - 1 - k  # 0 for the last packet
    # kinds: 0 SYN, 1 SYN-ACK, 2 ACK, 3 hello, 4 flight, 5-7 body, FIN up, FIN down
    body = rng.choice(len(BODY), total, p=list(BODY.values()))
    up = np.isin(body, (0, 3))
    plen = np.select(
        [body == 0, body == 1, body == 2],
        [np.clip(rng.lognormal(5.6, 0.7, total), 40, MSS), MSS, rng.integers(100, MSS, total)],
        0,
    ).astype(np.int64)
    flags = np.full(total, 0x18)
    flags[plen == 0] = 0x10
    at = mix.random_at + rng.integers(0, (1 << 20) - MSS, total)
    hs = np.select(
        [k == 0, k == 1, k == 2, k == 3],
        [0, 1, 2, 3],
        np.where(k < 7, 4, np.where(last == 1, 5, np.where(last == 0, 6, -1))),
    )
    up = np.where(hs >= 0, np.isin(hs, (0, 2, 3, 5)), up)
    flags = np.where(hs == 0, 0x02, np.where(hs == 1, 0x12, np.where(hs == 2, 0x10, np.where(hs >= 5, 0x11, flags))))
    plen = np.where(np.isin(hs, (0, 1, 2, 5, 6)), 0, plen)
    is_hello = hs == 3
    plen[is_hello] = mix.hello_len[server[sess[is_hello]]]
    at[is_hello] = mix.hello_at[server[sess[is_hello]]]
    fl = hs == 4  # the server flight in full-size segments
    part = k[fl] - 4
    at[fl] = mix.flight_at + part * MSS
    plen[fl] = np.clip(mix.flight_len - part * MSS, 0, MSS)
    flags[fl & (plen == 0)] = 0x10
    # sequence numbers: each direction from a random ISN, advanced by its own bytes (+1 for SYN)
    isn_up = rng.integers(0, 1 << 32, sessions)
    isn_down = rng.integers(0, 1 << 32, sessions)
    sent = plen + (hs == 0) + (hs == 1)
    cum_up = np.cumsum(np.where(up, sent, 0))
    cum_down = np.cumsum(np.where(up, 0, sent))
    before_up = cum_up - np.where(up, sent, 0) - np.repeat((cum_up - np.where(up, sent, 0))[first], lens_a)
    before_down = cum_down - np.where(up, 0, sent) - np.repeat((cum_down - np.where(up, 0, sent))[first], lens_a)
    seq_up = (isn_up[sess] + before_up) & 0xFFFFFFFF
    seq_down = (isn_down[sess] + before_down) & 0xFFFFFFFF
    seq = np.where(up, seq_up, seq_down)
    ack = np.where(hs == 0, 0, np.where(up, seq_down, seq_up))
    # time order: connections start at random points of the window, packets follow in order
    start = rng.random(sessions)
    key = start[sess] + k * rng.exponential(2e-4, sessions)[sess]
    out.add(
        key=(key * 1e12).astype(np.int64),
        up=up,
        proto=6,
        remote=mix.server_ip[server][sess],
        lport=ports[sess],
        rport=443,
        flags=flags,
        seq=seq,
        ack=ack,
        at=at,
        plen=plen,
    )
    return port + sessions


def _udp(mix: Mix, rng: np.random.Generator, out: _Packets, n: int, port: int) -> int:
    """DNS, NTP, SSDP and QUIC packets adding up to about ``n``; returns the next client port."""
    gw = _ip_int(GATEWAY)
    count = {kind: int(round(n * share / sum(UDP_MIX.values()))) for kind, share in UDP_MIX.items()}
    # DNS: query up to the gateway, answer down a few ms later
    q = count["dns"] // 2
    host = rng.choice(SERVERS, q, p=mix.server_p)
    t = rng.random(q)
    p = 49152 + (port + np.arange(q)) % 16384
    port += q
    for up, at, ln, dt in ((1, mix.dns[host, 0], mix.dns[host, 1], 0.0), (0, mix.dns[host, 2], mix.dns[host, 3], 1e-6)):
        out.add(key=((t + dt) * 1e12).astype(np.int64), up=up, proto=17, remote=gw, lport=p, rport=53, at=at, plen=ln)
    m = count["ntp"] // 2
    t = rng.random(m)
    ntp = mix.server_ip[rng.integers(0, SERVERS, m)]
    for up, dt in ((1, 0.0), (0, 1e-6)):
        out.add(
            key=((t + dt) * 1e12).astype(np.int64),
            up=up,
            proto=17,
            remote=ntp,
            lport=123,
            rport=123,
            at=mix.ntp_at,
            plen=48,
        )
    m = count["ssdp"]
    which = rng.integers(0, 2, m)
    out.add(
        key=(rng.random(m) * 1e12).astype(np.int64),
        up=1,
        proto=17,
        remote=_ip_int(SSDP_GROUP),
        lport=np.where(which == 0, 50000, 1900),
        rport=1900,
        at=mix.ssdp[which, 0],
        plen=mix.ssdp[which, 1],
        mcast=1,
    )
    # QUIC: connections of ~40 packets: the client's Initial, then short-header packets both ways
    m = count["quic"]
    conns = max(m // 40, 1)
    h = rng.integers(0, len(mix.quic_hosts), conns)
    c = rng.integers(0, conns, m)
    c[:conns] = np.arange(conns)
    c.sort()
    first = np.r_[True, c[1:] != c[:-1]]
    up = np.where(first, 1, rng.random(m) < 0.35)
    plen = np.where(first, 1200, np.where(up, rng.integers(40, 120, m), rng.integers(1100, 1350, m)))
    at = np.where(first, mix.quic_at[h[c]], mix.random_at + rng.integers(0, (1 << 20) - 1400, m))
    key = rng.random(conns)[c] + np.arange(m) * 1e-7
    cport = 49152 + (port + np.arange(conns)) % 16384
    port += conns
    out.add(
        key=(key * 1e12).astype(np.int64),
        up=up,
        proto=17,
        remote=mix.server_ip[mix.quic_hosts[h[c]]],
        lport=cport[c],
        rport=443,
        at=at,
        plen=plen,
        flags=np.where(first, 0, 1),
    )
    return port


def _frames(mix: Mix, cols: dict[str, np.ndarray], t0_us: int) -> bytes:
    """Pcap records (16-byte header + frame) of one window, in order."""
    n = len(cols["key"])
    tcp = cols["proto"] == 6
    head = np.where(tcp, TCP_HEAD, UDP_HEAD)
    size = head + cols["plen"]
    rec = 16 + size
    start = np.concatenate([[0], np.cumsum(rec)[:-1]])
    out = np.zeros(int(rec.sum()), np.uint8)
    us = t0_us + np.arange(n) * (1_000_000 // RATE) + (cols["key"] % 997)
    stamp = np.stack([us // 1_000_000, us % 1_000_000, size, size], axis=1).astype("<u4").view(np.uint8)
    out[start[:, None] + np.arange(16)] = stamp
    dev, remote = _ip_int(DEVICE), cols["remote"]
    up = cols["up"] == 1
    for sel, tpl in ((np.flatnonzero(tcp), mix.tcp_head), (np.flatnonzero(~tcp), mix.udp_head)):
        if not len(sel):
            continue
        h = np.repeat(tpl[None, :], len(sel), axis=0)
        u = up[sel]
        mac_dev, mac_gw = synth.mac(DEV_MAC), synth.mac(GW_MAC)
        mcast = cols["mcast"][sel] == 1
        h[:, 0:6] = np.where(
            u[:, None],
            np.where(mcast[:, None], np.frombuffer(synth.mac(SSDP_MAC), np.uint8), np.frombuffer(mac_gw, np.uint8)),
            np.frombuffer(mac_dev, np.uint8),
        )
        h[:, 6:12] = np.where(u[:, None], np.frombuffer(mac_dev, np.uint8), np.frombuffer(mac_gw, np.uint8))
        _put16(h, 16, size[sel] - 14)
        _put16(h, 18, (sel * 7) & 0xFFFF)
        _put32(h, 26, np.where(u, dev, remote[sel]))
        _put32(h, 30, np.where(u, remote[sel], dev))
        words = h[:, 14:34].astype(np.int64)
        words[:, 10:12] = 0
        total = (words[:, 0::2] * 256 + words[:, 1::2]).sum(axis=1)
        while (total >> 16).any():
            total = (total & 0xFFFF) + (total >> 16)
        _put16(h, 24, ~total & 0xFFFF)
        _put16(h, 34, np.where(u, cols["lport"][sel], cols["rport"][sel]))
        _put16(h, 36, np.where(u, cols["rport"][sel], cols["lport"][sel]))
        if tpl is mix.tcp_head:
            _put32(h, 38, cols["seq"][sel])
            _put32(h, 42, cols["ack"][sel])
            h[:, 46] = 0x80
            h[:, 47] = cols["flags"][sel]
            h[:, 54:58] = (1, 1, 8, 10)
            _put32(h, 58, us[sel] // 1000 & 0xFFFFFFFF)
            _put32(h, 62, (us[sel] // 1000 - 20) & 0xFFFFFFFF)
        else:
            _put16(h, 38, cols["plen"][sel] + 8)
        out[(start[sel] + 16)[:, None] + np.arange(h.shape[1])] = h
    src, _ = _gather(mix.bytes, cols["at"], cols["plen"])
    dst, _ = _gather(np.empty(0), start + 16 + head, cols["plen"])
    out[dst] = mix.bytes[src]
    # QUIC short-header packets: first byte 0x40-0x7f (fixed bit set, short header)
    short = (cols["proto"] == 17) & (cols["flags"] == 1)
    out[start[short] + 16 + head[short]] = 0x40 | (out[start[short] + 16 + head[short]] & 0x3F)
    return out.tobytes()


def write(path: Path, packets: int, seed: int = 1, flow_packets: int = 300, mix: Mix | None = None) -> int:
    """Write a classic pcap of ``packets`` packets of the realistic mix; returns its size."""
    mix = mix or Mix(seed)
    rng = np.random.default_rng(seed + 1)
    tls_share = 1 - sum(UDP_MIX.values())
    port = 0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        done = 0
        while done < packets:
            want = min(WINDOW, packets - done)
            out = _Packets()
            port = _tls(mix, rng, out, int(want * tls_share), flow_packets, port)
            port = _udp(mix, rng, out, want - sum(len(x) for x in out.parts["key"]), port)
            cols = out.columns()
            cols = {c: v[:want] for c, v in cols.items()}
            fh.write(_frames(mix, cols, START_S * 1_000_000 + done * (1_000_000 // RATE)))
            done += len(cols["key"])
    return path.stat().st_size
