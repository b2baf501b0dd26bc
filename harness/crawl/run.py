"""A crawl: every persona's own browser visits every site once, resumably.

Each persona gets one persistent Chromium profile and its own browser; up to ``jobs`` of its
pages load at once; personas crawl side by side and share nothing. Visits are committed through
the :class:`~harness.crawl.journal.Journal`, so a crawl killed at any moment resumes with
``--resume`` and ends with every (persona, site) visited exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness import __version__
from harness.crawl.browser import (
    check_persona,
    launch_options,
    playwright_version,
    profile_dir,
    require_playwright,
    set_third_party_cookies,
)
from harness.crawl.journal import Journal
from harness.crawl.layout import CrawlDir, new_crawl_id, visit_id
from harness.crawl.manifest import CrawlManifest, CrawlSettings, PersonaEntry, read_manifest, write_manifest
from harness.crawl.recorder import ContextRecorders, VisitKey
from harness.crawl.sites import read_sites
from harness.crawl.tables import write_parquet
from harness.crawl.visit import VisitPlan, visit_site
from harness.errors import HarnessError
from harness.files import private_dir, sha256_file

if TYPE_CHECKING:
    from playwright.async_api import Playwright


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...

    def advance(self, visit: dict[str, Any]) -> None: ...


class _Silent:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, visit: dict[str, Any]) -> None:
        pass


@dataclass
class CrawlSummary:
    """What a crawl (or its resume) ended with."""

    crawl_dir: str
    visits: int
    expected: int
    status: dict[str, int] = field(default_factory=dict)
    bids: int = 0
    forced: int = 0
    prebid_versions: list[str] = field(default_factory=list)
    completed: bool = False
    recovered: int = 0


def new_crawl(
    sites_file: Path, personas: Sequence[str], profiles: Path, out: Path, settings: CrawlSettings
) -> CrawlDir:
    """Create ``out/<crawl_id>/`` with its manifest (sites, personas, profiles, settings)."""
    names = [check_persona(p) for p in personas]
    if len(set(names)) != len(names):
        raise HarnessError(f"a persona is named twice ({', '.join(names)}): each needs its own profile")
    sites = read_sites(sites_file)
    private_dir(out)
    crawl = CrawlDir(out / new_crawl_id())
    crawl.create()
    manifest = CrawlManifest(
        crawl_id=crawl.root.name,
        created_ns=time.time_ns(),
        sites_file=str(sites_file),
        sites_sha256=sha256_file(sites_file),
        sites=sites,
        profiles=str(profiles.resolve()),
        personas=[PersonaEntry(name=name, profile=name) for name in names],
        settings=settings,
    )
    write_manifest(crawl, manifest)
    return crawl


def run_crawl(crawl: CrawlDir, progress: Progress | None = None) -> CrawlSummary:
    """Visit every (persona, site) not yet done; finish interrupted commits first. Writes the
    Parquet tables and marks the manifest completed when nothing is left."""
    require_playwright()
    progress = progress or _Silent()
    manifest = read_manifest(crawl)
    journal = Journal(crawl)
    try:
        recovered = journal.recover()
        done, attempts = journal.done(), journal.attempts()
        todo = {
            p.name: [i for i in range(len(manifest.sites)) if visit_id(p.name, i) not in done]
            for p in manifest.personas
        }
        manifest.starts_ns.append(time.time_ns())
        manifest.versions.harness, manifest.versions.playwright = __version__, playwright_version()
        write_manifest(crawl, manifest)
        total = len(manifest.sites) * len(manifest.personas)
        progress.start(total, len(done))
        versions: set[str] = set(manifest.versions.prebid)
        if any(todo.values()):
            asyncio.run(_crawl(crawl, manifest, todo, journal, attempts, progress, versions))
        done = journal.done()
    finally:
        journal.close()
    summary = _summary(crawl, manifest, done, recovered)
    if summary.completed:
        write_parquet(crawl)
        manifest.completed_ns = manifest.completed_ns or time.time_ns()
    write_manifest(crawl, manifest)
    return summary


async def _crawl(
    crawl: CrawlDir,
    manifest: CrawlManifest,
    todo: dict[str, list[int]],
    journal: Journal,
    attempts: Counter[str],
    progress: Progress,
    versions: set[str],
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        await asyncio.gather(
            *(
                _persona(pw, crawl, manifest, p, todo[p.name], journal, attempts, progress, versions)
                for p in manifest.personas
                if todo[p.name]
            )
        )


async def _persona(
    pw: Playwright,
    crawl: CrawlDir,
    manifest: CrawlManifest,
    persona: PersonaEntry,
    indices: list[int],
    journal: Journal,
    attempts: Counter[str],
    progress: Progress,
    versions: set[str],
) -> None:
    settings = manifest.settings
    profile = profile_dir(Path(manifest.profiles), persona.name)
    set_third_party_cookies(profile, settings.third_party_cookies)
    options = launch_options(profile, settings.executable, settings.headless, settings.browser_args)
    try:
        context = await pw.chromium.launch_persistent_context(**options)
    except Exception as exc:  # a profile in use by another browser, a Chromium that will not start
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HarnessError(f"{profile}: cannot start Chromium on persona {persona.name}'s profile: {first}") from None
    if context.browser is not None and context.browser.version != manifest.versions.chromium:
        manifest.versions.chromium = context.browser.version
        write_manifest(crawl, manifest)
    recorders = ContextRecorders()
    gate = asyncio.Semaphore(settings.jobs)

    async def one(index: int) -> None:
        async with gate:
            key = VisitKey(visit_id(persona.name, index), persona.name, manifest.sites[index])
            attempt = attempts[key.visit_id] + 1
            journal.start(key.visit_id, attempt, time.time_ns())
            plan = VisitPlan(key, index, persona.profile, attempt)
            try:
                outcome = await visit_site(context, recorders, plan, settings, crawl)
            except Exception as exc:  # the browser itself went away: stop, a resume continues
                raise HarnessError(
                    f"{crawl.root}: persona {persona.name}'s browser failed ({exc}); "
                    f"continue with `harness crawl run --resume {crawl.root}`"
                ) from None
            journal.commit(outcome.visit, outcome.rows)
            if outcome.prebid_version and outcome.prebid_version not in versions:
                versions.add(outcome.prebid_version)
                manifest.versions.prebid = sorted(versions)
                write_manifest(crawl, manifest)
            progress.advance(outcome.visit)

    try:
        await recorders.install(context)
        await asyncio.gather(*(one(i) for i in indices))
    finally:
        try:
            await context.close()
        except Exception:  # a browser that already died
            pass


def _summary(crawl: CrawlDir, manifest: CrawlManifest, done: dict[str, dict], recovered: int) -> CrawlSummary:
    expected = len(manifest.sites) * len(manifest.personas)
    status = Counter(v.get("status", "") for v in done.values())
    return CrawlSummary(
        crawl_dir=str(crawl.root),
        visits=len(done),
        expected=expected,
        status=dict(status),
        bids=sum(int(v.get("bids", 0)) for v in done.values()),
        forced=sum(1 for v in done.values() if v.get("auction") == "forced"),
        prebid_versions=sorted(manifest.versions.prebid),
        completed=len(done) == expected,
        recovered=recovered,
    )
