"""What a crawl records, one model per JSON-lines file of the crawl directory.

A crawl directory holds, per persona and site, what the browser saw: the visit itself
(``visits.jsonl``), the header-bidding bids read from the page (``bids.jsonl``), every request
(``requests.jsonl``), cookie write (``cookies.jsonl``) and storage write (``storage.jsonl``), and
the identifier syncs found in them (``sync.jsonl``). Every record carries ``visit_id``,
``persona`` and ``site`` so each file loads into pandas alone and joins on ``visit_id``.
Instants are UTC epoch nanoseconds. ``bids.jsonl`` rows are flat bid rows as ``harness ads``
reads them (persona, site, visit_time, bidder, cpm, currency, ad_unit, width, height, won).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    visit_id: str = Field(description="persona/site key of the visit: '<persona>/<site_index>'")
    persona: str
    site: str = Field(description="the URL of the page visited, as listed")


class Visit(_Record):
    """One page visit by one persona's browser profile."""

    site_index: int = Field(ge=0, description="0-based position of the site in the crawl's list")
    profile: str = Field(description="the browser profile used, relative to the profiles folder")
    attempt: int = Field(1, ge=1)
    started_ns: int
    ended_ns: int
    status: Literal["ok", "failed", "timeout"]
    error: str = ""
    prebid: bool = Field(description="the page runs Prebid.js (a pbjs object with a version)")
    auction: Literal["ran", "forced", "none"] = Field(
        description="'ran': bids came back on their own; 'forced': pbjs.requestBids() was called; 'none': no auction"
    )
    bids: int = Field(0, ge=0)
    requests: int = Field(0, ge=0)


class CrawlBid(_Record):
    """One bid read from the page: ``pbjs.getBidResponses()`` and ``pbjs.getAllWinningBids()``."""

    profile: str
    visit_time_ns: int = Field(description="when the visit started")
    visit_time: str = Field(
        "",
        description="visit_time_ns as ISO 8601 UTC (filled from it when absent): the time `harness ads` "
        "reads, which takes bare numbers for epoch seconds",
    )
    bidder: str
    cpm: float
    currency: str
    ad_unit: str = ""
    width: int | None = None
    height: int | None = None
    response_ms: float | None = Field(None, description="Prebid's timeToRespond")
    won: bool = False
    rendered: bool = False
    forced: bool = Field(False, description="the auction was forced by the crawler")
    ad_id: str = ""
    screenshot: str = Field("", description="path of the ad slot's screenshot, relative to the crawl directory")

    @model_validator(mode="before")
    @classmethod
    def _fill_visit_time(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("visit_time") and isinstance(data.get("visit_time_ns"), int):
            return {**data, "visit_time": iso_utc(data["visit_time_ns"])}
        return data


def iso_utc(time_ns: int) -> str:
    """UTC epoch nanoseconds as ISO 8601 with all nine digits: ``2026-12-01T05:46:05.362582041Z``."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


class Request(_Record):
    """One request the page made, from the browser's own network events."""

    seq: int = Field(ge=0, description="order within the visit")
    time_ns: int
    url: str
    method: str
    resource_type: str = ""
    frame_url: str = ""
    referrer: str = ""
    post_data: str = ""
    redirected_from: str = Field("", description="URL of the request that redirected to this one")
    status: int | None = None
    set_cookies: list[str] = Field(default_factory=list, description="Set-Cookie header values of the response")


class CookieWrite(_Record):
    """A cookie set during a visit: by a response header, by script, or seen in the jar."""

    time_ns: int
    source: Literal["http", "js", "jar"]
    domain: str
    name: str
    value: str
    path: str = "/"
    expires_ns: int | None = None
    http_only: bool = False
    secure: bool = False
    same_site: str = ""


class StorageWrite(_Record):
    """A ``localStorage``/``sessionStorage`` write by the page's scripts."""

    time_ns: int
    origin: str
    area: Literal["local", "session"]
    key: str
    value: str


class SyncPair(_Record):
    """An identifier one domain set that then travelled in a request to another domain."""

    time_ns: int = Field(description="when the identifier left for the receiver")
    identifier: str
    sender: str = Field(description="registrable domain that set the identifier (cookie or storage)")
    receiver: str = Field(description="registrable domain the identifier was sent to")
    carrier: Literal["url", "referrer", "body", "redirect"]
    request_url: str
