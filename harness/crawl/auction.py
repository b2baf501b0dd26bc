"""The header-bidding auction of a page: wait for it, force it where no bid came back, read it.

Everything is read from Prebid.js itself (``pbjs.getEvents()``, ``getBidResponses()``,
``getAllWinningBids()``, ``requestBids()``) through ``pbjs.js``, so what is recorded is what the
page's own auction saw.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import Page

PBJS_JS = files("harness.crawl").joinpath("pbjs.js").read_text(encoding="utf-8")
POLL_S = 0.2
#: How long a loaded page may take to define its Prebid global before it counts as without Prebid.
DISCOVER_S = 3.0


@dataclass
class Auction:
    """What a visit learnt about Prebid on its page."""

    prebid: bool = False
    version: str = ""
    outcome: str = "none"  # Visit.auction: ran, forced or none
    forced_ids: set[str] = field(default_factory=set)
    bids: list[dict[str, Any]] = field(default_factory=list)


async def _pbjs(page: Page, op: str, arg: Any = None) -> Any:
    return await page.evaluate(PBJS_JS, [op, arg])


async def prebid_state(page: Page, wait_s: float, done: Any = None) -> dict[str, Any] | None:
    """Poll the page's Prebid state (global, version, auctions ended, bid responses, ad units) for
    up to ``wait_s`` until it exists and ``done(state)``; the last state (None: no Prebid)."""
    deadline = time.monotonic() + wait_s
    state = await _pbjs(page, "state")
    while (state is None or (done is not None and not done(state))) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        state = await _pbjs(page, "state")
    return state


async def run_auction(page: Page, auction_timeout_s: float, settle_s: float) -> Auction:
    """Wait up to ``auction_timeout_s`` for Prebid and its auction to end; force one (tagged) when no
    bid came back; give ads ``settle_s`` to render; read every bid."""
    auction = Auction()
    start = time.monotonic()
    state = await prebid_state(page, min(DISCOVER_S, auction_timeout_s))
    if state is None:
        return auction
    left = max(0.0, auction_timeout_s - (time.monotonic() - start))
    state = await prebid_state(page, left, lambda s: s["auction_ends"] > 0)
    if state is None:  # the page removed its Prebid global meanwhile
        return auction
    auction.prebid, auction.version = True, state["version"]
    if state["responses"] > 0:
        auction.outcome = "ran"
    else:
        auction.outcome = "forced"
        forced = await _pbjs(page, "force", int(auction_timeout_s * 1000))
        if forced:
            auction.forced_ids.add(forced)
    if settle_s:
        await asyncio.sleep(settle_s)
    read = await _pbjs(page, "bids")
    if read is not None:
        auction.bids = merge_bids(read["bids"], read["winning"], auction.forced_ids)
    return auction


def merge_bids(responses: list[dict[str, Any]], winning: list[dict[str, Any]], forced_ids: set[str]) -> list[dict]:
    """One row per bid: the responses, marked won (a winning bid's ad id) and rendered, plus winning
    bids no longer among the responses; forced when the bid came from a forced auction."""
    won = {bid["ad_id"] for bid in winning if bid["ad_id"]}
    rows, seen = [], set()
    for bid in [*responses, *winning]:
        key = bid["ad_id"] or id(bid)
        if key in seen:
            continue
        seen.add(key)
        rows.append(
            {
                "bidder": bid["bidder"],
                "cpm": bid["cpm"],
                "currency": bid["currency"] or "USD",
                "ad_unit": bid["ad_unit"],
                "width": bid["width"],
                "height": bid["height"],
                "response_ms": bid["response_ms"],
                "won": bid["ad_id"] in won,
                "rendered": bid["status"] == "rendered",
                "forced": bid["auction_id"] in forced_ids,
                "ad_id": bid["ad_id"],
            }
        )
    return rows
