"""One visit: a persona's browser loads a site, its auction is awaited and read, and everything
the page did is recorded. A visit always ends in a :class:`~harness.crawl.records.Visit`, with
status ``failed`` or ``timeout`` when the page did not load or the visit ran out of time."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.crawl.auction import Auction, run_auction
from harness.crawl.layout import CrawlDir
from harness.crawl.manifest import CrawlSettings
from harness.crawl.recorder import ContextRecorders, VisitKey
from harness.crawl.records import CookieWrite, CrawlBid, Request, StorageWrite, Visit
from harness.files import atomic_write_bytes, private_dir

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page


@dataclass
class VisitOutcome:
    """A finished visit: its Visit record and the rows of each table, validated."""

    visit: dict[str, Any]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    prebid_version: str = ""


@dataclass(frozen=True)
class VisitPlan:
    key: VisitKey
    site_index: int
    profile: str
    attempt: int


async def visit_site(
    context: BrowserContext, recorders: ContextRecorders, plan: VisitPlan, settings: CrawlSettings, crawl: CrawlDir
) -> VisitOutcome:
    """Visit ``plan.key.site`` in ``context`` and return everything recorded (never raises for a
    page that fails: that is the visit's status)."""
    started = time.time_ns()
    page = await context.new_page()
    recorder = recorders.open(page, plan.key)
    status, error, auction = "ok", "", Auction()
    try:
        auction = await asyncio.wait_for(_load_and_read(page, plan, settings, crawl), settings.visit_timeout_s)
    except TimeoutError:
        status, error = "timeout", f"not done within {settings.visit_timeout_s:g} s"
    except Exception as exc:  # Playwright reports a page that fails to load as an error
        status, error = _failure(exc, settings)
    try:
        recorder.add_jar(await context.cookies())
    except Exception as exc:  # the browser is gone: the visit failed, whatever the page did
        status, error = "failed", error or _first_line(exc)
    await recorder.drain()
    recorders.close(page)
    try:
        await page.close()
    except Exception:  # closing a page of a crashed browser
        pass
    bids = [_bid_row(bid, plan, started) for bid in auction.bids if math.isfinite(bid["cpm"])]
    rows = {
        "bids": _valid(CrawlBid, bids),
        "requests": _valid(Request, recorder.requests),
        "cookies": _valid(CookieWrite, recorder.cookies),
        "storage": _valid(StorageWrite, recorder.storage),
    }
    visit = Visit(
        **plan.key.fields(),
        site_index=plan.site_index,
        profile=plan.profile,
        attempt=plan.attempt,
        started_ns=started,
        ended_ns=time.time_ns(),
        status=status,
        error=error,
        prebid=auction.prebid,
        auction=auction.outcome,
        bids=len(rows["bids"]),
        requests=len(rows["requests"]),
    )
    return VisitOutcome(visit=visit.model_dump(mode="json"), rows=rows, prebid_version=auction.version)


async def _load_and_read(page: Page, plan: VisitPlan, settings: CrawlSettings, crawl: CrawlDir) -> Auction:
    await page.goto(plan.key.site, wait_until="load", timeout=settings.load_timeout_s * 1000)
    auction = await run_auction(page, settings.auction_timeout_s, settings.settle_s)
    if settings.screenshots:
        shots = {unit: await _screenshot(page, crawl, plan, unit) for unit in {bid["ad_unit"] for bid in auction.bids}}
        for bid in auction.bids:
            bid["screenshot"] = shots[bid["ad_unit"]]
    return auction


async def _screenshot(page: Page, crawl: CrawlDir, plan: VisitPlan, ad_unit: str) -> str:
    """The ad slot (the element whose id is the ad unit's code, as Prebid pages name them)."""
    if not ad_unit:
        return ""
    path = crawl.screenshot(plan.key.persona, plan.site_index, ad_unit)
    slot = page.locator(f"[id={_css_string(ad_unit)}]")
    try:
        # the slot's box cut from the whole page: no wait for the element to be "stable", which
        # pages loading side by side in one browser may not reach
        box = await slot.bounding_box(timeout=2000) if await slot.count() == 1 else None
        if not box or box["width"] < 1 or box["height"] < 1:
            return ""  # no such slot, or an empty one
        x, y = await page.evaluate("[window.scrollX, window.scrollY]")  # the box is viewport-relative
        clip = {**box, "x": box["x"] + x, "y": box["y"] + y}
        data = await page.screenshot(clip=clip, full_page=True, timeout=10_000)
    except Exception:  # the page went away meanwhile
        return ""
    private_dir(path.parent)
    atomic_write_bytes(path, data)
    return crawl.relative(path)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bid_row(bid: dict[str, Any], plan: VisitPlan, started: int) -> dict[str, Any]:
    return plan.key.fields() | {"profile": plan.profile, "visit_time_ns": started} | bid


def _valid(model: type, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as their model writes them; a bid Prebid reported without a usable price is dropped."""
    out = []
    for row in rows:
        try:
            out.append(model(**row).model_dump(mode="json"))
        except ValueError:
            continue
    return out


def _failure(exc: Exception, settings: CrawlSettings) -> tuple[str, str]:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    if isinstance(exc, PlaywrightTimeout):
        return "timeout", f"the page did not load within {settings.load_timeout_s:g} s"
    return "failed", _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
