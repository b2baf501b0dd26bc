"""Screening: which of a list of sites run Prebid.js (the study kept those of the most popular
sites that define a ``pbjs`` global). Sites are loaded in a throwaway profile, so screening
leaves no trace in any persona's."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.crawl.auction import DISCOVER_S, prebid_state
from harness.crawl.browser import launch_options, require_playwright, set_third_party_cookies
from harness.crawl.manifest import CrawlSettings


@dataclass(frozen=True)
class Screened:
    site: str
    prebid: bool
    version: str = ""
    error: str = ""


def screen_sites(sites: list[str], settings: CrawlSettings, wait_s: float = DISCOVER_S) -> list[Screened]:
    """Load each site (``settings.jobs`` at once) and report whether it runs Prebid.js, in order."""
    require_playwright()
    with tempfile.TemporaryDirectory(prefix="harness-screen-") as profile:
        return asyncio.run(_screen(sites, settings, Path(profile), wait_s))


async def _screen(sites: list[str], settings: CrawlSettings, profile: Path, wait_s: float) -> list[Screened]:
    from playwright.async_api import async_playwright

    set_third_party_cookies(profile, settings.third_party_cookies)
    options = launch_options(profile, settings.executable, settings.headless, settings.browser_args)
    gate = asyncio.Semaphore(settings.jobs)
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(**options)

        async def one(site: str) -> Screened:
            async with gate:
                page = await context.new_page()
                try:
                    await page.goto(site, wait_until="load", timeout=settings.load_timeout_s * 1000)
                    state = await prebid_state(page, wait_s)
                except Exception as exc:  # a site that does not load is not kept
                    return Screened(site, False, error=(str(exc).strip().splitlines() or ["failed"])[0][:300])
                finally:
                    await page.close()
                return Screened(site, state is not None, state["version"] if state else "")

        try:
            return list(await asyncio.gather(*(one(site) for site in sites)))
        finally:
            await context.close()
