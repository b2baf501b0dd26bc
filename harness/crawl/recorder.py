"""What one page does during a visit, from the browser's own events: every request (with its
redirect chain, status and Set-Cookie values) and every cookie and storage write.

The requests come from Playwright's network events; cookie writes by script and storage writes
come from the init script ``hooks.js`` through a binding the context exposes once and routes to
the recorder of the page that wrote.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.crawl.cookies import jar_cookie, parse_cookie

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, Response
    from playwright.async_api import Request as PwRequest

BINDING = "__harness_record"
HOOKS_JS = files("harness.crawl").joinpath("hooks.js").read_text(encoding="utf-8")


@dataclass(frozen=True)
class VisitKey:
    """What every record of a visit carries."""

    visit_id: str
    persona: str
    site: str

    def fields(self) -> dict[str, str]:
        return {"visit_id": self.visit_id, "persona": self.persona, "site": self.site}


@dataclass
class PageRecorder:
    """Collects one visit's requests, cookie writes and storage writes (rows ready for the tables)."""

    key: VisitKey
    requests: list[dict[str, Any]] = field(default_factory=list)
    cookies: list[dict[str, Any]] = field(default_factory=list)
    storage: list[dict[str, Any]] = field(default_factory=list)
    _index: dict[int, int] = field(default_factory=dict)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("request", self._on_request)
        page.on("response", lambda response: self._spawn(self._on_response(response)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_request(self, request: PwRequest) -> None:
        try:
            frame_url = request.frame.url
        except Exception:  # a service worker's request has no frame
            frame_url = ""
        try:
            body = request.post_data_buffer
        except Exception:
            body = None
        previous = request.redirected_from
        self._index[id(request)] = len(self.requests)
        self.requests.append(
            self.key.fields()
            | {
                "seq": len(self.requests),
                "time_ns": time.time_ns(),
                "url": request.url,
                "method": request.method,
                "resource_type": request.resource_type,
                "frame_url": frame_url,
                "referrer": request.headers.get("referer", ""),
                "post_data": body.decode("utf-8", "replace") if body else "",
                "redirected_from": previous.url if previous is not None else "",
                "status": None,
                "set_cookies": [],
            }
        )

    async def _on_response(self, response: Response) -> None:
        index = self._index.get(id(response.request))
        if index is None:
            return
        row = self.requests[index]
        row["status"] = response.status
        try:
            values = await response.header_values("set-cookie")
        except Exception:  # the page closed before the headers could be read
            values = []
        host = urlsplit(response.url).hostname or ""
        now = time.time_ns()
        for value in (line for joined in values for line in joined.split("\n") if line.strip()):
            row["set_cookies"].append(value)
            cookie = parse_cookie(value, host, now)
            if cookie is not None:
                self.cookies.append(self.key.fields() | {"time_ns": now, "source": "http"} | cookie)

    def on_hook(self, data: dict[str, Any]) -> None:
        """A record from ``hooks.js``: a ``document.cookie`` or ``Storage.setItem`` write."""
        now = time.time_ns()
        if data.get("kind") == "cookie":
            cookie = parse_cookie(str(data.get("value", "")), str(data.get("host", "")), now)
            if cookie is not None:
                self.cookies.append(self.key.fields() | {"time_ns": now, "source": "js"} | cookie)
        elif data.get("kind") == "storage" and data.get("area") in ("local", "session"):
            self.storage.append(
                self.key.fields()
                | {
                    "time_ns": now,
                    "origin": str(data.get("origin", "")),
                    "area": data["area"],
                    "key": str(data.get("key", "")),
                    "value": str(data.get("value", "")),
                }
            )

    def add_jar(self, entries: list[dict[str, Any]]) -> None:
        """The cookie jar as it is at the end of the visit."""
        now = time.time_ns()
        self.cookies += [self.key.fields() | {"time_ns": now, "source": "jar"} | jar_cookie(e) for e in entries]

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for response handlers still reading headers."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


class ContextRecorders:
    """The recorders of one browser context's open pages, fed by one binding and one init script."""

    def __init__(self) -> None:
        self._pages: dict[int, PageRecorder] = {}

    async def install(self, context: BrowserContext) -> None:
        await context.expose_binding(BINDING, self._on_binding)
        await context.add_init_script(HOOKS_JS)

    def open(self, page: Page, key: VisitKey) -> PageRecorder:
        recorder = PageRecorder(key)
        recorder.attach(page)
        self._pages[id(page)] = recorder
        return recorder

    def close(self, page: Page) -> None:
        self._pages.pop(id(page), None)

    def _on_binding(self, source: dict[str, Any], data: Any) -> None:
        recorder = self._pages.get(id(source.get("page")))
        if recorder is not None and isinstance(data, dict):
            recorder.on_hook(data)
