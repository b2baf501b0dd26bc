"""The twin's Internet, on loopback: a DNS resolver, TLS servers and a time server.

Every endpoint name gets its own loopback address from a pool (Amazon's names from one, all
others from another), so flows can be told apart by address as well as by SNI. The servers
speak a tiny protocol inside TLS, full duplex so one connection can carry uploads while an
answer streams down: the client sends messages (:data:`MESSAGE`, then ``up`` bytes); a message
asking for ``down`` bytes opens a *job*, which the server sends in frames (:data:`FRAME`, one TLS
record each), the first ``burst`` bytes at once and the rest at ``rate`` bytes/s (0: at once),
then an empty frame that ends the job. :data:`OP_CANCEL` ends a job early (a cut answer).
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, ToolMissing

MESSAGE = struct.Struct("!BIIIII")  # op, job, up, down, burst, rate
FRAME = struct.Struct("!II")  # job, size (0: the job is over)
OP_SEND, OP_CANCEL = 1, 2
FRAME_DATA = 16384 - FRAME.size  # a frame fills at most one TLS record
TLS_RECORD_OVERHEAD = 22  # TLS 1.3 with AEAD: 5-byte header, content type, 16-byte tag
PACE_S = 0.2  # a paced job sends a frame this often
DNS_TTL_S = 300
# Privileged ports move up by this much when the twin is not allowed to bind them.
UNPRIVILEGED_OFFSET = 10000


class AddressBook:
    """Endpoint name -> loopback address, handed out in the order names are added."""

    def __init__(self, platform_pool: str, vendor_pool: str, platform_domains: list[str]) -> None:
        self._pools = {
            True: ipaddress.IPv4Network(platform_pool).hosts(),
            False: ipaddress.IPv4Network(vendor_pool).hosts(),
        }
        self._domains = [d.lower().strip(".") for d in platform_domains]
        self.addresses: dict[str, str] = {}

    def is_platform(self, name: str) -> bool:
        return any(name == d or name.endswith("." + d) for d in self._domains)

    def add(self, name: str) -> str:
        if name not in self.addresses:
            try:
                self.addresses[name] = str(next(self._pools[self.is_platform(name)]))
            except StopIteration:
                raise HarnessError(f"no loopback address left for {name}: widen the twin's address pools") from None
        return self.addresses[name]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for the TLS servers (the twin never verifies it)."""
    exe = shutil.which("openssl")
    if exe is None:
        raise ToolMissing("openssl is not installed (the twin's TLS servers need a certificate)")
    cert, key = folder / "twin-cert.pem", folder / "twin-key.pem"
    done = subprocess.run(
        [
            exe,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=twin.test",
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise HarnessError(f"openssl could not make the twin's certificate: {done.stderr.strip()}")
    os.chmod(key, 0o600)
    return cert, key


def bind(sock: socket.socket, address: str, port: int) -> int:
    """Bind ``sock`` to ``address:port``, or to port + 10000 when the port is privileged and the
    twin is not root; returns the port bound."""
    try:
        sock.bind((address, port))
        return port
    except PermissionError:
        sock.bind((address, port + UNPRIVILEGED_OFFSET))
        return port + UNPRIVILEGED_OFFSET
    except OSError as exc:
        raise HarnessError(f"the twin cannot listen on {address}:{port}: {exc.strerror or exc}") from None


def parse_question(query: bytes) -> tuple[int, str, int]:
    """(id, lower-case name, qtype) of a DNS query."""
    ident = struct.unpack("!H", query[:2])[0]
    labels, at = [], 12
    while query[at]:
        size = query[at]
        labels.append(query[at + 1 : at + 1 + size].decode("ascii", "replace"))
        at += 1 + size
    qtype = struct.unpack("!H", query[at + 1 : at + 3])[0]
    return ident, ".".join(labels).lower(), qtype


def dns_reply(query: bytes, address: str | None) -> bytes:
    """The resolver's answer to ``query``: one A record, or NXDOMAIN when ``address`` is None."""
    ident, _, qtype = parse_question(query)
    end = query.index(b"\0", 12) + 5
    question = query[12:end]
    if address is None or qtype != 1:
        flags, answers = (0x8183 if address is None else 0x8180), b""
    else:
        flags = 0x8180
        answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, DNS_TTL_S, 4) + ipaddress.IPv4Address(address).packed
    count = 1 if answers else 0
    return struct.pack("!HHHHHH", ident, flags, 1, count, 0, 0) + question + answers


class Servers:
    """Every server the twin's traffic reaches; start with :meth:`start`, end with :meth:`stop`."""

    def __init__(self, book: AddressBook, resolver: str, cert_dir: Path) -> None:
        self.book = book
        self.resolver = resolver
        self.cert_dir = cert_dir
        self.ports: dict[str, int] = {}
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # Client (address, port) -> the server stalls that connection's handshake (a hung skill).
        self.stalled: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def start(self, tls_names: list[str], ntp_names: list[str]) -> None:
        cert, key = make_certificate(self.cert_dir)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ports["dns"] = bind(dns, self.resolver, 53)
        self._serve(dns, self._dns_loop)
        for address in sorted({self.book.add(n) for n in tls_names}):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.ports["tls"] = bind(listener, address, 443)
            listener.listen(64)
            self._serve(listener, self._accept_loop)
        for address in sorted({self.book.add(n) for n in ntp_names}):
            ntp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.ports["ntp"] = bind(ntp, address, 123)
            self._serve(ntp, self._ntp_loop)
        self.ports.setdefault("tls", 443)
        self.ports.setdefault("ntp", 123)

    def _serve(self, sock: socket.socket, loop) -> None:
        sock.settimeout(0.2)
        self._sockets.append(sock)
        thread = threading.Thread(target=loop, args=(sock,), daemon=True, name=f"twin-server-{sock.getsockname()}")
        thread.start()
        self._threads.append(thread)

    def stall(self, client: tuple[str, int]) -> None:
        with self._lock:
            self.stalled.add(client)

    def _dns_loop(self, sock: socket.socket) -> None:
        names = self.book.addresses
        while not self._stop.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                _, name, _ = parse_question(query)
                sock.sendto(dns_reply(query, names.get(name)), peer)
            except (IndexError, struct.error, OSError):
                continue  # a malformed query gets no answer, as from a real resolver

    def _ntp_loop(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                _, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            seconds = time.time() + 2208988800  # NTP era 0 starts in 1900
            stamp = struct.pack("!II", int(seconds), int((seconds % 1) * 2**32))
            sock.sendto(b"\x24\x02\x00\xe7" + bytes(8) + b"LOCL" + stamp * 4, peer)  # a 48-byte server reply

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn, peer), daemon=True).start()

    def _connection(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(30)
        with conn:
            if peer in self.stalled:
                # A hung skill: accept TCP, never answer the ClientHello, hang up when the client does.
                while not self._stop.is_set() and _recv_some(conn):
                    pass
                return
            try:
                with self._context.wrap_socket(conn, server_side=True) as tls:
                    _Duplex(tls, self._stop).run()
            except (ssl.SSLError, OSError):
                return

    def stop(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(1.0)


@dataclass(order=True)
class _Job:
    """Bytes still owed on one job; ``due`` is when its next paced frame goes."""

    due: float
    job: int
    left: int
    rate: int


class _Duplex:
    """One server connection: reads messages and sends jobs' frames in one thread (a TLS
    object must not be read and written from two)."""

    def __init__(self, tls: ssl.SSLSocket, stop: threading.Event) -> None:
        self.tls, self.stop = tls, stop
        self.inbox = bytearray()
        self.skip = 0  # payload bytes of the current message still to read
        self.jobs: list[_Job] = []
        self.outbox: list[bytes] = []

    def run(self) -> None:
        self.tls.setblocking(False)
        while not self.stop.is_set():
            self._produce(time.monotonic())
            if not self._write():
                return
            wait = max(0.0, min([j.due for j in self.jobs], default=time.monotonic() + 0.2) - time.monotonic())
            if not self.tls.pending():
                readable, _, _ = select.select([self.tls], [self.tls] if self.outbox else [], [], min(wait, 0.2))
                if not readable:
                    continue
            if not self._read():
                return

    def _read(self) -> bool:
        """Take in what arrived; False when the client hung up."""
        while True:
            try:
                data = self.tls.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ssl.SSLZeroReturnError:
                return False
            if not data:
                return False
            self.inbox += data
        self._parse()
        return True

    def _parse(self) -> None:
        while True:
            if self.skip:
                used = min(self.skip, len(self.inbox))
                del self.inbox[:used]
                self.skip -= used
                if self.skip:
                    return
            if len(self.inbox) < MESSAGE.size:
                return
            op, job, up, down, burst, rate = MESSAGE.unpack_from(self.inbox)
            del self.inbox[: MESSAGE.size]
            self.skip = up
            if op == OP_CANCEL:
                self._end(job)
            elif down:
                first = min(burst, down) if rate else down
                self._frames(job, first)
                if down > first:
                    heapq.heappush(self.jobs, _Job(time.monotonic() + PACE_S, job, down - first, rate))
                else:
                    self.outbox.append(FRAME.pack(job, 0))

    def _end(self, job: int) -> None:
        kept = [j for j in self.jobs if j.job != job]
        if len(kept) < len(self.jobs):
            heapq.heapify(kept)
            self.jobs = kept
            self.outbox.append(FRAME.pack(job, 0))

    def _frames(self, job: int, size: int) -> None:
        for start in range(0, size, FRAME_DATA):
            n = min(FRAME_DATA, size - start)
            self.outbox.append(FRAME.pack(job, n) + os.urandom(n))

    def _produce(self, now: float) -> None:
        while self.jobs and self.jobs[0].due <= now:
            job = heapq.heappop(self.jobs)
            n = min(job.left, max(1, int(job.rate * PACE_S)))
            self._frames(job.job, n)
            if job.left > n:
                heapq.heappush(self.jobs, _Job(job.due + PACE_S, job.job, job.left - n, job.rate))
            else:
                self.outbox.append(FRAME.pack(job.job, 0))

    def _write(self) -> bool:
        """Send what is queued, as far as the socket takes it; False when the client is gone."""
        while self.outbox:
            try:
                self.tls.send(self.outbox[0])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return True
            except OSError:
                return False
            self.outbox.pop(0)
        return True


def _recv_some(conn: socket.socket) -> bool:
    try:
        return bool(conn.recv(65536))
    except TimeoutError:
        return True
    except OSError:
        return False
