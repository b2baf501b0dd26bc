"""The twin's side of its connections: DNS lookups, TLS sessions and time queries, every one
from the device address, each reported as a flow with its cause when it ends.

TLS runs over a memory BIO so the twin sends and receives the exact bytes on the wire itself:
that lets it trace them for a synthetic capture (:mod:`harness.twin.wire`) when it cannot run
tcpdump.
"""

from __future__ import annotations

import itertools
import math
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.net.synth import dns_query
from harness.rundir import truth
from harness.rundir.truth import Cause
from harness.twin.servers import DNS_TTL_S, FRAME, MESSAGE, OP_CANCEL, OP_SEND, TLS_RECORD_OVERHEAD, Servers
from harness.twin.wire import TcpTrace, Wire

RECV_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Received:
    """One frame that came down: its job, its bytes on the wire (TLS record), whether it ended the job."""

    job: int
    wire_bytes: int
    end: bool


@dataclass
class Flow:
    """One flow as the truth records it (times are UTC epoch ns of its first and last packet)."""

    cause: Cause
    purpose: str
    endpoint: str
    protocol: str
    app: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    first_ns: int
    last_ns: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    outcome: str = "ok"
    error: str | None = None

    def record(self) -> truth.Flow:
        """The flow as the truth records it."""
        fields = {k: v for k, v in vars(self).items() if k != "cause"}
        return truth.Flow(cause=self.cause, **fields)

    def connection(self) -> truth.Connection:
        return truth.Connection(
            endpoint=self.endpoint,
            src_ip=self.src_ip,
            src_port=self.src_port,
            dst_ip=self.dst_ip,
            dst_port=self.dst_port,
        )


@dataclass
class Network:
    """What a client needs: the device address, the servers, where finished flows go."""

    device: str
    servers: Servers
    on_flow: Callable[[Flow], None]
    wire: Wire | None = None
    _cache: dict[str, tuple[str | None, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, name: str, cause: Cause) -> str | None:
        """The address of ``name`` from the cache, else a lookup (its own UDP flow)."""
        with self._lock:
            cached = self._cache.get(name)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        address = self._lookup(name, cause)
        with self._lock:
            self._cache[name] = (address, time.monotonic() + DNS_TTL_S)
        return address

    def _lookup(self, name: str, cause: Cause) -> str | None:
        resolver = (self.servers.resolver, self.servers.ports["dns"])
        query = dns_query(name, ident=int.from_bytes(os.urandom(2), "big"))
        flow, reply = self._exchange(cause, "dns", name, "dns", resolver, query, 4096)
        address = _a_record(reply)
        flow.outcome = "ok" if address else "nxdomain"
        self.on_flow(flow)
        return address

    def _exchange(
        self, cause: Cause, purpose: str, name: str, app: str, server: tuple[str, int], request: bytes, size: int
    ) -> tuple[Flow, bytes]:
        """One UDP request and its reply (empty, outcome "timeout", when none comes in 2 s),
        recorded on the wire when the twin writes its own capture; the caller logs the flow."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((self.device, 0))
            sock.settimeout(2.0)
            local = sock.getsockname()
            flow = Flow(cause, purpose, name, "udp", app, local[0], local[1], *server, time.time_ns())
            sock.sendto(request, server)
            if self.wire is not None:
                self.wire.datagram(flow.first_ns, local, server, request)
            try:
                reply = sock.recv(size)
            except TimeoutError:
                reply, flow.outcome = b"", "timeout"
            flow.last_ns = time.time_ns()
        if self.wire is not None and reply:
            self.wire.datagram(flow.last_ns, server, local, reply)
        flow.bytes_up, flow.bytes_down = len(request), len(reply)
        return flow, reply

    def time_query(self, name: str, cause: Cause) -> Flow | None:
        """One NTP-style query to ``name`` (UDP port 123)."""
        address = self.resolve(name, cause)
        if address is None:
            return None
        server = (address, self.servers.ports["ntp"])
        request = b"\x23" + bytes(39) + int(time.time() + 2208988800).to_bytes(4, "big") + bytes(4)
        flow, _ = self._exchange(cause, "time", name, "ntp", server, request, 512)
        self.on_flow(flow)
        return flow

    def connect(self, name: str, cause: Cause, purpose: str, stall_s: float | None = None) -> TlsSession | None:
        """A TLS session to ``name`` (SNI = name); None when the name does not resolve.

        ``stall_s``: the server never answers the ClientHello (a hung skill) and the twin
        gives up after that long; the session comes back already closed.
        """
        address = self.resolve(name, cause)
        if address is None:
            return None
        return TlsSession(self, name, address, cause, purpose, stall_s)


class TlsSession:
    """A TLS connection from the device; :meth:`send`, :meth:`receive`, :meth:`exchange` and
    :meth:`post` talk, :meth:`close` ends it and reports the flow. ``sent_ns``/``received_ns``:
    when the last bytes went out and came in (the instants traced)."""

    def __init__(
        self, net: Network, name: str, address: str, cause: Cause, purpose: str, stall_s: float | None
    ) -> None:
        self.net = net
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((net.device, 0))
        self.sock.settimeout(RECV_TIMEOUT_S)
        local = self.sock.getsockname()
        remote = (address, net.servers.ports["tls"])
        self.flow = Flow(cause, purpose, name, "tcp", "tls", local[0], local[1], *remote, time.time_ns())
        self.trace: TcpTrace | None = net.wire.connection(local, remote) if net.wire is not None else None
        self.closed = False
        self._jobs = itertools.count(1)
        self._plain = bytearray()  # received application bytes not yet parsed into frames
        self.sent_ns = self.received_ns = 0  # when the last bytes went out and came in
        if stall_s is not None:
            net.servers.stall(local)
        try:
            self.sock.connect(remote)
        except OSError as exc:
            self._fail("error", str(exc))
            return
        if self.trace is not None:
            self.trace.handshake(self.flow.first_ns, time.time_ns())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the twin's servers use a throwaway self-signed cert
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=name)
        if stall_s is not None:
            self.sock.settimeout(stall_s)
        try:
            self._io(self.tls.do_handshake)
        except (OSError, ssl.SSLError) as exc:
            self._fail("stalled" if stall_s is not None else "error", str(exc) or type(exc).__name__)
            return
        self.sock.settimeout(RECV_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one segment per record, as sent

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)
            self.sent_ns = time.time_ns()
            self.flow.bytes_up += len(data)
            if self.trace is not None:
                self.trace.sent(self.sent_ns, data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        self.received_ns = time.time_ns()
        self.flow.bytes_down += len(data)
        if self.trace is not None:
            self.trace.received(self.received_ns, data)
        self.incoming.write(data)

    def _io(self, step: Callable[[], Any]) -> Any:
        while True:
            try:
                result = step()
                self._flush()
                return result
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()

    def send(self, up: int, down: int = 0, burst: int = 0, rate: int = 0) -> tuple[int, int]:
        """Send a message with ``up`` bytes asking for ``down`` bytes back (the first ``burst`` at
        once, the rest at ``rate`` bytes/s; 0: all at once). Returns its job (0 when ``down`` is 0)
        and its bytes on the wire."""
        job = next(self._jobs) if down else 0
        return job, self._write(MESSAGE.pack(OP_SEND, job, up, down, burst, rate) + os.urandom(up))

    def cancel(self, job: int) -> int:
        """Ask the server to stop sending ``job``; returns the bytes on the wire."""
        return self._write(MESSAGE.pack(OP_CANCEL, job, 0, 0, 0, 0))

    def _write(self, payload: bytes) -> int:
        if self.closed:
            return 0
        before = self.flow.bytes_up
        try:
            self._io(lambda: self.tls.write(payload))
        except (OSError, ssl.SSLError) as exc:
            self._fail("error", str(exc) or type(exc).__name__)
        return self.flow.bytes_up - before

    def receive(self, timeout_s: float) -> list[Received]:
        """The frames that came down within ``timeout_s`` (none when nothing did)."""
        if self.closed:
            return []
        try:
            if not self.tls.pending() and select.select([self.sock], [], [], timeout_s)[0]:
                self._fill()
            while True:
                self._plain += self.tls.read(65536)
        except ssl.SSLWantReadError:
            pass
        except (OSError, ssl.SSLError) as exc:
            self._fail("error", str(exc) or type(exc).__name__)
        frames = []
        while len(self._plain) >= FRAME.size:
            job, size = FRAME.unpack_from(self._plain)
            if len(self._plain) < FRAME.size + size:
                break
            del self._plain[: FRAME.size + size]
            frames.append(Received(job, FRAME.size + size + TLS_RECORD_OVERHEAD, size == 0))
        return frames

    def exchange(self, up: int, down: int) -> None:
        """Send ``up`` bytes and read ``down`` bytes back (gives up after :data:`RECV_TIMEOUT_S` of silence)."""
        job, _ = self.send(up, down)
        quiet_until = time.monotonic() + RECV_TIMEOUT_S
        while job and not self.closed:
            frames = self.receive(max(0.0, quiet_until - time.monotonic()))
            if any(f.job == job and f.end for f in frames):
                return
            if frames:
                quiet_until = time.monotonic() + RECV_TIMEOUT_S
            elif time.monotonic() >= quiet_until:
                self._fail("error", "no answer from the server")

    def post(self, total: int, record_bytes: int, spread_s: float, down: int) -> None:
        """Send ``total`` bytes in records of about ``record_bytes`` spread over ``spread_s`` (a
        metrics post: a few large records), then read ``down`` bytes back."""
        count = max(2, math.ceil(total / record_bytes))
        size = total // count
        for _ in range(count - 1):
            self.send(size)
            time.sleep(spread_s / (count - 1))
        self.exchange(total - (count - 1) * size, down)

    def close(self) -> Flow:
        """Hang up (FIN), wait for the server's FIN, report the flow."""
        if not self.closed:
            fin = time.time_ns()
            try:
                self.sock.shutdown(socket.SHUT_WR)
                while self.sock.recv(65536):
                    pass
            except OSError:
                pass
            self._finish(fin)
        return self.flow

    def _fail(self, outcome: str, error: str) -> None:
        self.flow.outcome, self.flow.error = outcome, error
        fin = time.time_ns()
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(1.0)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        self._finish(fin)

    def _finish(self, fin_ns: int) -> None:
        self.sock.close()
        self.flow.last_ns = time.time_ns()
        if self.trace is not None:
            self.trace.closed(fin_ns, self.flow.last_ns)
        self.closed = True
        self.net.on_flow(self.flow)


def _a_record(reply: bytes) -> str | None:
    """The first A record's address in a DNS reply (the twin's resolver writes exactly one)."""
    if len(reply) < 12 or reply[3] & 0x0F or int.from_bytes(reply[6:8], "big") == 0:
        return None
    return socket.inet_ntoa(reply[-4:])
