"""Crawl speed and browser memory: ``harness crawl`` against a plain Playwright script.

Method. The offline rig (tests/crawl_rig.py: 20 local sites with the real Prebid.js and its
bidder adapters answered on loopback) is started once. Each round runs, in alternating order,
(a) the crawl (one persona, a fresh profile, ``--jobs`` pages at once, settle 0 s) and (b) a
plain script with the same library, browser, flags and concurrency that only opens each page,
waits for its load event and closes it. Per run: visits per minute (sites / wall time, browser
start included) and the peak memory of the browser (the sum of the resident set sizes of the
Chromium process on that profile and all its descendants, sampled every 100 ms from /proc). The
summary gives the medians of each and the median of the paired ratios crawl / plain. The
crawl's extra time is what it is for: waiting for the auction, reading bids, recording every
request, cookie and storage write, and fsyncing them.

    python benchmarks/crawl_speed.py [--rounds 5] [--jobs 2]

Needs npm (the rig bundles Prebid.js from the npm registry once) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from crawl_rig import build_bundle, rig_cache, running_rig  # noqa: E402
from peak import PeakMemory  # noqa: E402

from harness.crawl.browser import launch_options  # noqa: E402
from harness.crawl.manifest import CrawlSettings  # noqa: E402
from harness.crawl.run import new_crawl, run_crawl  # noqa: E402
from harness.crawl.sites import write_sites  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(marker: str) -> int:
    """Bytes resident in the processes whose command line holds ``marker`` and their descendants."""
    parents: dict[int, int] = {}
    roots = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker.encode() in cmdline:
            roots.add(int(entry))
    tree, grew = set(roots), True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree and pid not in tree}
        tree |= more
        grew = bool(more)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


def crawl_once(sites_file: Path, work: Path, settings: CrawlSettings) -> tuple[float, int]:
    profiles = work / "profiles"
    crawl = new_crawl(sites_file, ["bench"], profiles, work / "crawls", settings)
    with PeakMemory(lambda: _tree_rss(str(profiles / "bench"))) as memory:
        start = time.monotonic()
        summary = run_crawl(crawl)
        elapsed = time.monotonic() - start
    assert summary.completed and summary.status == {"ok": summary.expected}, summary
    return elapsed, memory.peak


def plain_once(sites: list[str], work: Path, settings: CrawlSettings) -> tuple[float, int]:
    from playwright.async_api import async_playwright

    profile = work / "plain-profile"

    async def run() -> None:
        options = launch_options(profile, settings.executable, True, settings.browser_args)
        gate = asyncio.Semaphore(settings.jobs)
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(**options)

            async def one(site: str) -> None:
                async with gate:
                    page = await context.new_page()
                    await page.goto(site, wait_until="load")
                    await page.close()

            await asyncio.gather(*(one(site) for site in sites))
            await context.close()

    with PeakMemory(lambda: _tree_rss(str(profile))) as memory:
        start = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - start
    return elapsed, memory.peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    bundle = build_bundle(rig_cache())
    with tempfile.TemporaryDirectory(prefix="crawl-speed-") as tmp, running_rig(bundle, Path(tmp)) as rig:
        sites_file = write_sites(Path(tmp) / "sites.txt", rig.sites)
        settings = CrawlSettings(jobs=args.jobs, settle_s=0.0, browser_args=rig.browser_args)
        results: dict[str, list[tuple[float, int]]] = {"crawl": [], "plain": []}
        for round_ in range(args.rounds):
            order = ["crawl", "plain"] if round_ % 2 == 0 else ["plain", "crawl"]
            for name in order:
                work = Path(tempfile.mkdtemp(dir=tmp))
                if name == "crawl":
                    results[name].append(crawl_once(sites_file, work, settings))
                else:
                    results[name].append(plain_once(rig.sites, work, settings))
            c, p = results["crawl"][-1], results["plain"][-1]
            print(
                f"round {round_ + 1}: crawl {len(rig.sites) / c[0] * 60:.1f} visits/min, {c[1] / 2**20:.0f} MB; "
                f"plain {len(rig.sites) / p[0] * 60:.1f} visits/min, {p[1] / 2**20:.0f} MB"
            )
        n = len(rig.sites)
        rate = {k: [n / e * 60 for e, _ in v] for k, v in results.items()}
        peak = {k: [m / 2**20 for _, m in v] for k, v in results.items()}
        rate_ratio = statistics.median(c / p for c, p in zip(rate["crawl"], rate["plain"], strict=True))
        mem_ratio = statistics.median(c / p for c, p in zip(peak["crawl"], peak["plain"], strict=True))
        print(f"\n{n} sites, jobs {args.jobs}, {args.rounds} paired rounds (medians)")
        med = {k: (statistics.median(rate[k]), statistics.median(peak[k])) for k in results}
        print(f"  visits per minute: crawl {med['crawl'][0]:.1f}, plain {med['plain'][0]:.1f}")
        print(f"  peak browser memory MB (sum of RSS): crawl {med['crawl'][1]:.0f}, plain {med['plain'][1]:.0f}")
        print(f"  paired ratio crawl/plain: speed {rate_ratio:.2f}, memory {mem_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
