"""Captures made here with real tcpdump on loopback: DNS (CNAME), TLS with SNI, HTTP Host."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.cli.main import main
from harness.net import synth
from tests.conftest import require_root, require_tool

pytestmark = pytest.mark.root

DEVICE = "127.0.0.66"
RESOLVER, TLS_HOST, PLAIN_HOST, WEB_HOST = "127.0.0.77", "127.0.0.78", "127.0.0.79", "127.0.0.80"


def dns_server(sock: socket.socket, stop: threading.Event) -> None:
    chain = [("www.example.test", "CNAME", "edge.example.test"), ("edge.example.test", "A", PLAIN_HOST)]
    records = {"www.example.test": chain}
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            query, peer = sock.recvfrom(512)
        except TimeoutError:
            continue
        parts, i = [], 12
        while query[i]:
            parts.append(query[i + 1 : i + 1 + query[i]].decode())
            i += 1 + query[i]
        name = ".".join(parts)
        sock.sendto(synth.dns_response(name, records.get(name, []), int.from_bytes(query[:2], "big")), peer)


def tls_server(sock: socket.socket, context: ssl.SSLContext) -> None:
    conn, _ = sock.accept()
    with context.wrap_socket(conn, server_side=True) as tls:
        tls.recv(100)
        tls.sendall(b"bye")


def plain_server(sock: socket.socket) -> None:
    conn, _ = sock.accept()
    with conn:
        conn.recv(1000)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")


def listen(address: str, kind: int = socket.SOCK_STREAM, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    if kind == socket.SOCK_STREAM:
        sock.listen(1)
    return sock


def client(address: str, port: int) -> socket.socket:
    return socket.create_connection((address, port), timeout=5, source_address=(DEVICE, 0))


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = require_tool("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=secure.example.test",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_tcpdump(path: Path) -> subprocess.Popen:
    tcpdump = require_tool("tcpdump")
    proc = subprocess.Popen(
        # --immediate-mode: without it, packets still in the kernel ring when tcpdump is stopped are lost
        [
            tcpdump,
            "-i",
            "lo",
            "--immediate-mode",
            "-U",
            "-n",
            "--time-stamp-precision=nano",
            "-w",
            str(path),
            "host",
            DEVICE,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        pytest.skip(f"tcpdump did not start: {line.strip()}")
    return proc


def test_loopback_capture_names_endpoints(tmp_path: Path, certificate, capsys) -> None:
    require_root()
    capture = tmp_path / "lo.pcap"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    try:
        resolver = listen(RESOLVER, socket.SOCK_DGRAM, 53)
    except OSError as exc:
        pytest.skip(f"cannot bind a DNS server on {RESOLVER}:53: {exc}")
    servers = [listen(TLS_HOST), listen(PLAIN_HOST), listen(WEB_HOST)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=dns_server, args=(resolver, stop)),
        threading.Thread(target=tls_server, args=(servers[0], context)),
        threading.Thread(target=plain_server, args=(servers[1],)),
        threading.Thread(target=plain_server, args=(servers[2],)),
    ]
    tcpdump = start_tcpdump(capture)
    try:
        for t in threads:
            t.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((DEVICE, 0))
            udp.settimeout(5)
            udp.sendto(synth.dns_query("www.example.test", 77), (RESOLVER, 53))
            udp.recv(512)
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        tls_sock = client(TLS_HOST, servers[0].getsockname()[1])
        with client_ctx.wrap_socket(tls_sock, server_hostname="secure.example.test") as tls:
            tls.sendall(b"hi")
            tls.recv(10)
        with client(PLAIN_HOST, servers[1].getsockname()[1]) as plain:
            plain.sendall(b"\x00binary hello")
            plain.recv(100)
        with client(WEB_HOST, servers[2].getsockname()[1]) as web:
            web.sendall(b"GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
            web.recv(100)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for s in (resolver, *servers):
            s.close()
        tcpdump.terminate()
        tcpdump.wait(10)
    args = [str(capture), "--device", DEVICE, "--format", "json", "--flows", str(tmp_path / "f.parquet")]
    assert main(["net", *args]) == 0
    result = json.loads(capsys.readouterr().out)
    by_name = {e["endpoint_id"]: e for e in result["endpoints"]}
    assert by_name["secure.example.test"]["name_sources"] == ["sni"]
    assert by_name["www.example.test"]["name_sources"] == ["dns"]
    assert by_name["www.example.test"]["addresses"] == [PLAIN_HOST]
    assert by_name["web.example.test"]["name_sources"] == ["http"]
    assert by_name[RESOLVER]["flows"] == 1
    for e in by_name.values():
        assert e["bytes_up"] > 0 and e["bytes_down"] > 0 and e["first_capture_ns"] <= e["last_capture_ns"]
    flows = pd.read_parquet(tmp_path / "f.parquet")
    assert set(flows["local_ip"]) == {DEVICE} and flows["device"].all()
    assert (flows["first_ns"] > 1_600_000_000 * 10**9).all()  # nanosecond timestamps
