"""The twin's Internet, on loopback: a DNS resolver, TLS servers and a time server.

Every endpoint name gets its own loopback address from a pool (Amazon's names from one, all
others from another), so flows can be told apart by address as well as by SNI. The servers
speak a tiny protocol inside TLS: the client sends an 8-byte header (bytes it will send, bytes
it wants back), then its bytes; the server answers with that many bytes; repeat until EOF.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

from harness.errors import HarnessError, ToolMissing

HEADER = struct.Struct("!II")
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
        [exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=twin.test"],
        capture_output=True, text=True,
    )  # fmt: skip
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
                    while True:
                        header = _recv_exact(tls, HEADER.size)
                        if header is None:
                            return
                        up, down = HEADER.unpack(header)
                        if up and _recv_exact(tls, up) is None:
                            return
                        if down:
                            tls.sendall(os.urandom(down))
            except (ssl.SSLError, OSError):
                return

    def stop(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(1.0)


def _recv_some(conn: socket.socket) -> bool:
    try:
        return bool(conn.recv(65536))
    except TimeoutError:
        return True
    except OSError:
        return False


def _recv_exact(sock, size: int) -> bytes | None:
    parts, got = [], 0
    while got < size:
        try:
            chunk = sock.recv(min(size - got, 65536))
        except (ssl.SSLZeroReturnError, ConnectionError):
            return None
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
