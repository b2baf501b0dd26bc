"""The crawl's offline rig: several "domains" on loopback serving pages with the real Prebid.js.

Chromium reaches them through ``--host-resolver-rules`` (every rig host mapped to a local port,
every other name unresolvable, so nothing leaves the machine). Pages ``http://siteN.test/`` run
Prebid.js with its real AppNexus and OpenX adapters; the adapters' own endpoints
(``https://ib.adnxs.com``, ``https://rtb.openx.net``) are answered here in each adapter's response
format, with prices that depend on the ``seg`` cookie the persona's profile carries. Ad domains
sync an identifier by redirect, beside decoys a sync detector must not count. docs/crawl.md
("the rig") lists the planted pairs and the decoys.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

RIG = Path(__file__).resolve().parent / "rig"
CHROMIUM = "/usr/bin/chromium"
SITES = 20
#: What the persona's seg cookie does to every bid: the planted effect the ads analysis recovers.
MULTIPLIER = {"a": 3.0, "b": 1.5}
#: The identifier every browser shares (a decoy: a constant is no identifier).
SHARED_CONSTANT = "5f0c2b9e8d7a41c6b3e2f1a0d9c8b7a6"
AD_UNITS = (("top", 300, 250), ("side", 728, 90))
BIDDER_HOSTS = ("ib.adnxs.com", "rtb.openx.net")
SYNC_HOSTS = ("s.amazon-adsystem.com", "pixel.rubiconproject.com")
#: Identifier syncs the rig plants: (sender, receiver, how).
PLANTED = (
    ("amazon-adsystem.com", "adnxs.com", "redirect: /iu3 sets ad-id, 302 to ib.adnxs.com/getuid?partner_uid=<ad-id>"),
    (
        "amazon-adsystem.com",
        "rubiconproject.com",
        "redirect chain: getuid 302 to pixel.rubiconproject.com ?uid=<ad-id>",
    ),
)


def bundle_key() -> str:
    """Changes whenever the bundle's inputs do (the pinned packages and the entry module)."""
    digest = hashlib.sha256()
    for name in ("package-lock.json", "prebid-entry.js", "build-prebid"):
        digest.update((RIG / name).read_bytes())
    return digest.hexdigest()[:16]


def build_bundle(cache: Path) -> Path:
    """The rig's Prebid.js bundle, built once per input change into ``cache`` (outside git)."""
    out = cache / f"prebid-{bundle_key()}"
    bundle = out / "prebid.js"
    if not bundle.is_file():
        subprocess.run([str(RIG / "build-prebid"), str(out)], check=True, capture_output=True, timeout=600)
    return bundle


def cpm(site: str, unit: str, bidder: str, seg: str) -> float:
    """A bid's price: a base per site, slot and bidder, times the persona's multiplier, +-4%."""
    base_hash = hashlib.sha256(f"{site}|{unit}|{bidder}".encode()).digest()
    base = 0.2 + int.from_bytes(base_hash[:4], "big") / 2**32 * 1.8
    jitter_hash = hashlib.sha256(f"{site}|{unit}|{bidder}|{seg}".encode()).digest()
    jitter = 0.96 + int.from_bytes(jitter_hash[:4], "big") / 2**32 * 0.08
    return round(base * MULTIPLIER.get(seg, 1.0) * jitter, 4)


def site_url(n: int) -> str:
    """The listed URL of site n; its pv parameter is a decoy (a value of the page's own URL)."""
    return f"http://site{n}.test/?pv={hashlib.md5(f'pv{n}'.encode()).hexdigest()}"


def _self_signed(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harness crawl rig")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "rig-cert.pem", folder / "rig-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # three pages open their connections to every host at once (all hosts are these two servers)
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        # a browser that closes a page mid-response (the benchmark's plain script) is no rig error
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    rig: Rig
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    # ----- plumbing ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return (self.headers.get("Host") or "").split(":")[0]

    def _cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except Exception:
            return {}
        return {k: m.value for k, m in jar.items()}

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html", headers: tuple = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        origin = self.headers.get("Origin")
        if origin:  # credentialed CORS, as the real bidders answer
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _gif(self, headers: tuple = ()) -> None:
        self._send(200, _GIF, "image/gif", headers)

    def _redirect(self, location: str, headers: tuple = ()) -> None:
        self._send(302, b"", "text/plain", (("Location", location), *headers))

    def do_OPTIONS(self) -> None:  # noqa: N802 (http.server's naming)
        self._send(204, b"", "text/plain", (("Access-Control-Allow-Methods", "GET, POST"),))

    def do_GET(self) -> None:  # noqa: N802
        self._route(b"")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        self._route(self.rfile.read(length))

    # ----- the rig's domains ------------------------------------------------------------------

    def _route(self, body: bytes) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        host = self.host
        self.rig.hits.append((host, url.path))
        if host == "static.test" and url.path == "/prebid.js":
            self._send(200, self.rig.bundle.read_bytes(), "application/javascript")
        elif host.endswith(".test") and host.startswith("site"):
            self._send(200, self.rig.page(host, query).encode(), "text/html; charset=utf-8")
        elif host == "plain.test":
            self._send(200, b"<!doctype html><title>plain</title><p>No header bidding here.</p>")
        elif url.path == "/seed" and host in BIDDER_HOSTS:
            seg = query.get("seg", "")
            self._send(200, f"<p>seg={html.escape(seg)}</p>".encode(), headers=(("Set-Cookie", _cookie("seg", seg)),))
        elif host == "ib.adnxs.com" and url.path.startswith("/ut/"):
            self._send(200, json.dumps(self._appnexus(json.loads(body or b"{}"))).encode(), "application/json")
        elif host == "rtb.openx.net" and url.path.startswith("/openrtb"):
            self._send(200, json.dumps(self._openx(json.loads(body or b"{}"))).encode(), "application/json")
        else:
            self._sync(host, url.path, query)

    def _site(self) -> str:
        origin = self.headers.get("Origin") or self.headers.get("Referer") or ""
        return urlsplit(origin).hostname or ""

    def _appnexus(self, request: dict) -> dict:
        seg, site = self._cookies().get("seg", ""), self._site()
        tags = []
        for tag in request.get("tags", []):
            size = (tag.get("sizes") or [{"width": 300, "height": 250}])[0]
            unit = str(tag.get("id"))
            price = cpm(site, unit, "appnexus", seg)
            creative = _creative("appnexus", price, size["width"], size["height"])
            ad = {
                "content_source": "rtb",
                "ad_type": "banner",
                "buyer_member_id": 958,
                "creative_id": 1000 + len(tags),
                "media_type_id": 1,
                "media_subtype_id": 1,
                "cpm": price,
                "cpm_publisher_currency": price,
                "publisher_currency_code": "$",
                "rtb": {
                    "banner": {"content": creative, "width": size["width"], "height": size["height"]},
                    "trackers": [{"impression_urls": ["https://ib.adnxs.com/it"], "video_events": {}}],
                },
            }
            tags.append({"uuid": tag.get("uuid"), "tag_id": tag.get("id"), "auction_id": "1", "ads": [ad]})
        return {"version": "3.0.0", "tags": tags}

    def _openx(self, request: dict) -> dict:
        seg, site = self._cookies().get("seg", ""), self._site()
        bids = []
        for imp in request.get("imp", []):
            size = ((imp.get("banner") or {}).get("format") or [{"w": 300, "h": 250}])[0]
            unit = str((imp.get("ext") or {}).get("unit") or imp.get("tagid") or "")
            price = cpm(site, unit, "openx", seg)
            bids.append(
                {
                    "id": secrets.token_hex(8),
                    "impid": imp.get("id"),
                    "price": price,
                    "adm": _creative("openx", price, size["w"], size["h"]),
                    "w": size["w"],
                    "h": size["h"],
                    "crid": "rig-creative",
                    "mtype": 1,
                    "adomain": ["advertiser.test"],
                }
            )
        return {"id": request.get("id"), "cur": "USD", "seatbid": [{"seat": "openx", "bid": bids}] if bids else []}

    def _sync(self, host: str, path: str, query: dict[str, str]) -> None:
        cookies = self._cookies()
        if host == "s.amazon-adsystem.com" and path == "/iu3":
            # planted: a per-browser identifier, set here and sent on to adnxs.com by redirect
            uid = cookies.get("ad-id") or secrets.token_hex(16)
            self._redirect(f"https://ib.adnxs.com/getuid?partner_uid={uid}", (("Set-Cookie", _cookie("ad-id", uid)),))
        elif host == "ib.adnxs.com" and path == "/getuid":
            # planted, second hop: the same identifier on to rubiconproject.com
            uid = query.get("partner_uid", "")
            self._redirect(f"https://pixel.rubiconproject.com/exchange/sync.php?p=amzn&uid={uid}")
        elif host == "s.amazon-adsystem.com" and path == "/cfg":
            # decoy: a long hex constant every browser gets, sent on to openx.net
            self._redirect(
                f"https://rtb.openx.net/cfg?v={SHARED_CONSTANT}", (("Set-Cookie", _cookie("cfg", SHARED_CONSTANT)),)
            )
        elif host == "rtb.openx.net" and path == "/ts":
            # decoy: a timestamp set as a cookie and sent on to adnxs.com
            now = str(int(time.time() * 1000))
            self._redirect(f"https://ib.adnxs.com/px?since={now}", (("Set-Cookie", _cookie("last", now)),))
        else:
            self._gif()


def _cookie(name: str, value: str) -> str:
    return f"{name}={value}; Path=/; Max-Age=31536000; SameSite=None; Secure"


def _creative(bidder: str, price: float, width: int, height: int) -> str:
    return (
        f'<div style="width:{width}px;height:{height}px;background:#3a6;color:#fff;font:14px sans-serif">'
        f"{bidder} {price:.2f}</div>"
    )


_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{host}</title>
<script async src="http://static.test/prebid.js"></script>
<script>
  var pbjs = pbjs || {{}};
  pbjs.que = pbjs.que || [];
  var adUnits = {ad_units};
  document.cookie = "pv=" + new URLSearchParams(location.search).get("pv") + "; path=/";
  localStorage.setItem("visits", String(Number(localStorage.getItem("visits") || 0) + 1));
  pbjs.que.push(function () {{
    pbjs.addAdUnits(adUnits);
    pbjs.setConfig({{ userSync: {{ syncEnabled: false }} }});
    if ({lazy}) return;  // slots filled on scroll: the crawler forces the auction
    pbjs.requestBids({{ timeout: 2000, bidsBackHandler: function () {{
      adUnits.forEach(function (unit) {{
        var best = pbjs.getHighestCpmBids(unit.code)[0];
        if (!best) return;
        var frame = document.createElement("iframe");
        frame.width = best.width; frame.height = best.height; frame.style.border = "0";
        document.getElementById(unit.code).appendChild(frame);
        pbjs.renderAd(frame.contentWindow.document, best.adId);
      }});
    }} }});
  }});
</script></head>
<body><h1>{host}</h1>
<div id="{top}"></div><div id="{side}"></div>
<img src="https://s.amazon-adsystem.com/iu3" width="1" height="1" alt="">
<img src="https://s.amazon-adsystem.com/cfg" width="1" height="1" alt="">
<img src="https://rtb.openx.net/ts" width="1" height="1" alt="">
</body></html>
"""


@dataclass
class Rig:
    """The running rig: its servers, the Chromium flags that reach them, its sites."""

    bundle: Path
    folder: Path
    lazy: frozenset[int] = frozenset({19, 20})
    hits: list[tuple[str, str]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    _servers: list = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list)

    def page(self, host: str, query: dict[str, str]) -> str:
        n = int(host.removeprefix("site").removesuffix(".test"))
        units = []
        for k, (code, width, height) in enumerate(AD_UNITS):
            unit, placement = f"{code}-{n}", n * 10 + k
            units.append(
                {
                    "code": unit,
                    "mediaTypes": {"banner": {"sizes": [[width, height]]}},
                    "bids": [
                        {"bidder": "appnexus", "params": {"placementId": placement}},
                        {"bidder": "openx", "params": {"unit": str(placement), "delDomain": "rig-d.openx.net"}},
                    ],
                }
            )
        return _PAGE.format(
            host=html.escape(host),
            ad_units=json.dumps(units).replace("</", "<\\/"),
            lazy="true" if n in self.lazy else "false",
            top=f"top-{n}",
            side=f"side-{n}",
        )

    @property
    def sites(self) -> list[str]:
        return [site_url(n) for n in range(1, SITES + 1)]

    def seeds(self, seg: str) -> list[str]:
        """Pages that give a profile the persona's ``seg`` cookie on each bidder's domain."""
        return [f"https://{host}/seed?seg={seg}" for host in BIDDER_HOSTS]

    @property
    def browser_args(self) -> list[str]:
        rules = [f"MAP {host} 127.0.0.1:{port}" for host, port in self.ports.items()]
        return [f"--host-resolver-rules={', '.join([*rules, 'MAP * ~NOTFOUND'])}", "--ignore-certificate-errors"]

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"rig": self})
        plain = _Server(("127.0.0.1", 0), handler)
        hosts = [f"site{n}.test" for n in range(1, SITES + 1)] + ["static.test", "plain.test"]
        self.ports |= {host: plain.server_address[1] for host in hosts}
        secure = _Server(("127.0.0.1", 0), handler)
        tls_hosts = [*BIDDER_HOSTS, *SYNC_HOSTS]
        cert, key = _self_signed(self.folder, tls_hosts)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        # each connection's handshake in its own thread: in accept() it would hold up every other
        # connection behind one slow client (a browser's preconnect that sends nothing for seconds)
        secure.socket = context.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
        self.ports |= {host: secure.server_address[1] for host in tls_hosts}
        self._servers += [plain, secure]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.ports["closes.test"] = self._broken(close=True)
        self.ports["hangs.test"] = self._broken(close=False)

    def _broken(self, close: bool) -> int:
        """A server that closes every connection at once, or accepts and never answers."""
        listener = socket.create_server(("127.0.0.1", 0))
        self._sockets.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                if close:
                    conn.close()
                else:
                    self._sockets.append(conn)

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1]

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for sock in self._sockets:
            sock.close()


@contextmanager
def running_rig(bundle: Path, folder: Path) -> Iterator[Rig]:
    rig = Rig(bundle=bundle, folder=folder)
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


#: The end-to-end crawl's personas and the seg cookie each profile is seeded with (None: the control).
PERSONAS = {"persona-a": "a", "persona-b": "b", "control": None}
#: Crawl options that keep a rig crawl short.
FAST = ["--jobs", "3", "--auction-timeout", "4", "--settle", "0.3", "--load-timeout", "10", "--visit-timeout", "40"]


def harness_cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    """``harness ARGS`` in a child process of this checkout (output captured as text)."""
    env = {**os.environ, "PYTHONPATH": str(RIG.parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args], capture_output=True, text=True, env=env, **kw
    )


def crawl_rig(rig: Rig, folder: Path, personas: dict[str, str | None] = PERSONAS, *more: str) -> Path:
    """Seed each persona's profile with its seg cookie, then crawl the rig's 20 sites with all of
    them in one command; the crawl directory. What the sync detector's tests can run on."""
    profiles = folder / "profiles"
    browser = [f"--browser-arg={arg}" for arg in rig.browser_args]
    for persona, seg in personas.items():
        if seg is not None:
            seeds = folder / f"seeds-{persona}.txt"
            seeds.write_text("\n".join(rig.seeds(seg)) + "\n")
            done = harness_cli(
                "crawl",
                "run",
                str(seeds),
                "--persona",
                persona,
                "--profiles",
                str(profiles),
                "--out",
                str(folder / "seeding"),
                *browser,
            )
            assert done.returncode == 0, done.stderr
    sites = folder / "sites.txt"
    sites.write_text("# the rig's sites\n" + "\n".join(rig.sites) + "\n")
    chosen = [arg for persona in personas for arg in ("--persona", persona)]
    common = ["--profiles", str(profiles), "--out", str(folder / "crawls"), *browser, *FAST, *more]
    done = harness_cli("crawl", "run", str(sites), *chosen, *common, "--format", "json")
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["crawl_dir"])


@contextmanager
def rig_or_skip(folder: Path) -> Iterator[Rig]:
    """The running rig for a test, or a skip naming what is missing (Chromium, npm, the registry)."""
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright", reason="Playwright for Python is a dependency of the crawl")
    if not npm_available():
        pytest.skip("npm/node are not installed: the rig bundles Prebid.js from the npm registry")
    try:
        bundle = build_bundle(rig_cache())
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot build the rig's Prebid.js (npm registry unreachable?): {exc.stderr[-300:]!r}")
    with running_rig(bundle, folder) as rig:
        yield rig


def rig_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "harness-test-rig"


def npm_available() -> bool:
    return shutil.which("npm") is not None and shutil.which("node") is not None
