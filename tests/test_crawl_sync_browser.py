"""Sync detection on real browser traffic: Debian's headless Chromium (driven by Playwright) loads a
page on loopback whose ad server X sets an id cookie and redirects to Y with it, beside look-alikes
that are no sync (the page's own query value, Date.now(), a constant every persona gets)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.crawl.records import CookieWrite, Request
from harness.crawl.sync import find_syncs

CHROMIUM = Path("/usr/bin/chromium")
PAGE, X, Y = "news.test", "ads.xsync.test", "match.ybid.test"
CONSTANT = "pub0a1b2c3d4e5f6789"  # the same for every visitor: a publisher id


class _Handler(BaseHTTPRequestHandler):
    ports: dict[str, int] = {}

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        host = self.headers.get("Host", "").split(":")[0]
        ports = self.ports
        if host == PAGE:
            page = f"""<!doctype html><title>news</title>
<img src="http://{X}:{ports[X]}/sync?pub={CONSTANT}">
<script>new Image().src = "http://{Y}:{ports[Y]}/px?ref=" + new URLSearchParams(location.search).get("article")
  + "&t=" + Date.now() + "&pub={CONSTANT}";</script>"""
            self._send(200, page.encode(), (("Content-Type", "text/html"),))
        elif host == X and self.path.startswith("/sync"):
            cookie = self.headers.get("Cookie", "")
            ident = cookie.split("uid=", 1)[1].split(";")[0] if "uid=" in cookie else secrets.token_hex(10)
            location = f"http://{Y}:{ports[Y]}/setuid?xuid={ident}&pub={CONSTANT}"
            cookies = (("Set-Cookie", f"uid={ident}; Path=/; Max-Age=86400"), ("Set-Cookie", f"meta=v1|{CONSTANT}"))
            self._send(302, b"", (("Location", location), *cookies))
        else:
            self._send(200, b"GIF89a", (("Content-Type", "image/gif"),))


@pytest.fixture
def servers() -> Iterator[dict[str, int]]:
    started = []
    ports = {}
    for host in (PAGE, X, Y):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        ports[host] = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    _Handler.ports = ports
    yield ports
    for server in started:
        server.shutdown()
        server.server_close()


def crawl(ports: dict[str, int], personas: list[str], visits: int) -> tuple[list[Request], list[CookieWrite]]:
    """Each persona's own browser context visits the page; every request and cookie recorded."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    rules = ",".join(f"MAP {host} 127.0.0.1" for host in ports) + ",MAP * ~NOTFOUND"
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--host-resolver-rules={rules}",
    ]
    requests: list[Request] = []
    cookies: list[CookieWrite] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            for persona in personas:
                context = browser.new_context()
                for index in range(visits):
                    site = f"http://{PAGE}:{ports[PAGE]}/story?article=a{secrets.token_hex(8)}"
                    common = {"visit_id": f"{persona}/{index}", "persona": persona, "site": site}
                    seen: list[tuple] = []
                    page = context.new_page()
                    page.on("requestfinished", lambda request, seen=seen: seen.append((request, time.time_ns())))
                    page.goto(site, wait_until="networkidle")
                    for seq, (request, when) in enumerate(seen):
                        response = request.response()
                        headers = response.headers_array() if response else []
                        requests.append(
                            Request(
                                **common,
                                seq=seq,
                                time_ns=when,
                                url=request.url,
                                method=request.method,
                                resource_type=request.resource_type,
                                frame_url=request.frame.url if request.frame else "",
                                referrer=request.headers.get("referer", ""),
                                post_data=request.post_data or "",
                                redirected_from=request.redirected_from.url if request.redirected_from else "",
                                status=response.status if response else None,
                                set_cookies=[h["value"] for h in headers if h["name"].lower() == "set-cookie"],
                            )
                        )
                    page.close()
                    for cookie in context.cookies():
                        cookies.append(
                            CookieWrite(
                                **common,
                                time_ns=time.time_ns(),
                                source="jar",
                                domain=cookie["domain"],
                                name=cookie["name"],
                                value=cookie["value"],
                            )
                        )
                context.close()
        finally:
            browser.close()
    return requests, cookies


def test_a_redirect_sync_in_real_browser_traffic_is_found_and_nothing_else(servers) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM})")
    requests, cookies = crawl(servers, ["health", "vanilla"], visits=2)
    redirects = [r for r in requests if r.redirected_from]
    assert redirects and all(r.url.startswith(f"http://{Y}") for r in redirects)  # the browser saw the hop
    result = find_syncs(requests, cookies)
    sent = {(r.persona, r.url.split("xuid=")[1].split("&")[0]) for r in redirects}
    assert {(p.persona, p.identifier, p.sender, p.receiver, p.carrier) for p in result.pairs} == {
        (persona, uid, "xsync.test", "ybid.test", "redirect") for persona, uid in sent
    }
