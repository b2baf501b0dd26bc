"""Preparing a persona's profile by hand: a visible browser on it, for the researcher to sign in
to the persona's accounts once; the crawl then reuses the profile (its cookies, its logins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.crawl.browser import launch_options, require_display, require_playwright, set_third_party_cookies
from harness.crawl.manifest import CrawlSettings
from harness.defaults import default


def login_options(profile: Path, settings: CrawlSettings, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The launch options of the visible browser; a one-line error when there is no display."""
    require_display(env)
    return launch_options(profile, settings.executable, headless=False, extra=settings.browser_args)


def open_for_login(profile: Path, settings: CrawlSettings, url: str = default.login_url) -> None:
    """Open ``url`` in a visible browser on ``profile`` and return when the researcher closes it."""
    options = login_options(profile, settings)
    require_playwright()
    set_third_party_cookies(profile, settings.third_party_cookies)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(**options)
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(url)
        context.wait_for_event("close", timeout=0)
