"""``harness crawl``: each persona's own browser visits header-bidding sites (run, screen, login)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.args import seconds, whole
from harness.defaults import default

if TYPE_CHECKING:
    from harness.crawl.manifest import CrawlSettings
    from harness.crawl.run import CrawlSummary


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "crawl",
        help="visit header-bidding sites with a browser profile per persona: bids, requests, cookies",
        description="Drive Debian's Chromium through Playwright: one persistent profile per persona visits "
        "every listed site, waits for the Prebid.js auction (forcing one where no bid came back), and records "
        "the bids, every request, cookie and storage write into a resumable crawl directory.",
    )
    sub = p.add_subparsers(dest="crawl_command", metavar="ACTION")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="crawl SITES with each persona's profile (or --resume a crawl directory)",
        description="Visit every site of SITES (a text file, one URL a line, '#' comments) once per persona, "
        "each persona in its own browser on its own profile (PROFILES/<persona>/, 0700). Writes "
        "crawls/<crawl_id>/: manifest.json, visits/bids/requests/cookies/storage .jsonl (append-only, "
        "fsynced) and tables/*.parquet when complete. bids.jsonl is read by `harness ads` as it is. "
        "Ctrl-C or a crash loses at most the visits under way: --resume CRAWL_DIR continues.",
    )
    run.add_argument("sites", nargs="?", type=Path, metavar="SITES", help="file of site URLs, one a line")
    run.add_argument(
        "--persona", action="append", default=[], metavar="P", help="a persona (repeat for several; e.g. a control)"
    )
    run.add_argument("--profiles", type=Path, metavar="DIR", help="folder of the personas' profiles (DIR/<persona>/)")
    run.add_argument(
        "--out", type=Path, default=default.crawls_dir, help=f"where the crawl directory goes ({default.crawls_dir})"
    )
    run.add_argument("--resume", type=Path, metavar="CRAWL_DIR", help="continue a stopped or crashed crawl")
    _browser_options(run)
    run.add_argument("--jobs", type=whole(1), default=2, help="pages loading at once per persona (default 2)")
    run.add_argument(
        "--visit-timeout", type=seconds(1), default=60.0, help="a visit not done by then is logged 'timeout' (60)"
    )
    run.add_argument("--load-timeout", type=seconds(1), default=30.0, help="waiting for the page's load event (30)")
    run.add_argument(
        "--auction-timeout", type=seconds(0.5), default=8.0, help="waiting for the Prebid auction to end (8)"
    )
    run.add_argument("--settle", type=seconds(0), default=1.0, help="after the auction, time for ads to render (1)")
    run.add_argument("--screenshots", action="store_true", help="save a picture of each ad slot that got a bid")
    run.add_argument("--format", choices=("table", "json"), default="table")
    run.set_defaults(func=run_command, parser=run)

    screen = sub.add_parser(
        "screen",
        help="keep the sites of a list that run Prebid.js",
        description="Load each site of SITES in a throwaway profile and keep those that define a Prebid.js "
        "global (pbjs, or a name in _pbjsGlobals): the list a crawl then visits.",
    )
    screen.add_argument("sites", type=Path, metavar="SITES", help="file of site URLs, one a line")
    screen.add_argument("--out", type=Path, required=True, metavar="FILE", help="where the kept sites are written")
    screen.add_argument("--jobs", type=whole(1), default=4, help="pages loading at once (default 4)")
    screen.add_argument("--wait", type=seconds(0), default=3.0, help="after load, time for pbjs to appear (3)")
    screen.add_argument("--load-timeout", type=seconds(1), default=30.0, help="waiting for the load event (30)")
    _browser_options(screen)
    screen.add_argument("--format", choices=("table", "json"), default="table")
    screen.set_defaults(func=screen_command)

    login = sub.add_parser(
        "login",
        help="open a visible browser on a persona's profile to sign in by hand",
        description="Open a visible Chromium on PROFILES/<persona>/ so the researcher can sign in to the persona's "
        "accounts; close the browser when done. Needs a display (DISPLAY or WAYLAND_DISPLAY).",
    )
    login.add_argument("--persona", required=True, metavar="P")
    login.add_argument("--profiles", type=Path, required=True, metavar="DIR")
    login.add_argument("--url", default=default.login_url, help=f"page to open ({default.login_url})")
    _browser_options(login)
    login.set_defaults(func=login_command)


def _browser_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chromium", default=default.chromium, metavar="PATH", help=f"browser ({default.chromium})")
    p.add_argument(
        "--browser-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="an extra Chromium flag, e.g. --browser-arg=--proxy-server=... (repeatable)",
    )
    p.add_argument(
        "--block-third-party-cookies",
        action="store_true",
        help="block third-party cookies (Chromium's default; the crawl allows them, as the study's browsers did)",
    )


def _settings(args: argparse.Namespace, **more: Any) -> CrawlSettings:
    from harness.crawl.manifest import CrawlSettings

    return CrawlSettings(
        executable=args.chromium,
        browser_args=args.browser_arg,
        third_party_cookies=not args.block_third_party_cookies,
        **more,
    )


class _Bar:
    """The crawl's progress on stderr: visits done of all, rate, time left."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from harness.cli.console import err

        self.progress = Progress(
            TextColumn("crawling"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        )
        self.task = self.progress.add_task("crawl", total=None, last="")

    def start(self, total: int, done: int) -> None:
        self.progress.update(self.task, total=total, completed=done)

    def advance(self, visit: dict[str, Any]) -> None:
        last = f"{visit['persona']} {visit['status']} {visit['bids']} bids"
        self.progress.update(self.task, advance=1, last=last)


def run_command(args: argparse.Namespace) -> int:
    from harness.crawl.layout import CrawlDir
    from harness.crawl.run import new_crawl, run_crawl

    if args.resume is not None:
        if args.sites or args.persona or args.profiles:
            args.parser.error("--resume takes sites, personas and profiles from the crawl directory; give none")
        crawl = CrawlDir.existing(args.resume)
    else:
        if args.sites is None or not args.persona or args.profiles is None:
            args.parser.error("give SITES, at least one --persona and --profiles (or --resume CRAWL_DIR)")
        settings = _settings(
            args,
            jobs=args.jobs,
            visit_timeout_s=args.visit_timeout,
            load_timeout_s=args.load_timeout,
            auction_timeout_s=args.auction_timeout,
            settle_s=args.settle,
            screenshots=args.screenshots,
        )
        crawl = new_crawl(args.sites, args.persona, args.profiles, args.out, settings)
    bar = _Bar()
    with bar.progress:
        summary = run_crawl(crawl, bar)
    _print_summary(summary, args.format)
    return 0


def _print_summary(summary: CrawlSummary, form: str) -> None:
    from dataclasses import asdict

    from harness.cli.console import out, plain, print_json

    if form == "json":
        print_json(asdict(summary))
        return
    status = ", ".join(f"{n} {s}" for s, n in sorted(summary.status.items())) or "none"
    state = "complete" if summary.completed else f"incomplete: resume with --resume {summary.crawl_dir}"
    out.print(plain(f"crawl directory: {summary.crawl_dir} ({state})"))
    out.print(plain(f"visits: {summary.visits} of {summary.expected} ({status}); {summary.forced} auctions forced"))
    versions = ", ".join(summary.prebid_versions) or "none seen"
    out.print(plain(f"bids: {summary.bids} (bids.jsonl, for `harness ads`); Prebid.js {versions}"))


def screen_command(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rich.table import Table

    from harness.cli.console import out, plain, print_json
    from harness.crawl.screen import screen_sites
    from harness.crawl.sites import read_sites, write_sites

    sites = read_sites(args.sites)
    settings = _settings(args, jobs=args.jobs, load_timeout_s=args.load_timeout)
    results = screen_sites(sites, settings, args.wait)
    kept = [r.site for r in results if r.prebid]
    if kept:
        write_sites(args.out, kept)
    if args.format == "json":
        print_json({"out": str(args.out) if kept else None, "sites": [asdict(r) for r in results]})
    else:
        table = Table("site", "Prebid.js", "error")
        for r in results:
            table.add_row(plain(r.site), plain(r.version or "-"), plain(r.error))
        out.print(table)
        where = f"written to {args.out}" if kept else "nothing written"
        out.print(plain(f"{len(kept)} of {len(results)} sites run Prebid.js; {where}"))
    return 0


def login_command(args: argparse.Namespace) -> int:
    from harness.crawl.browser import profile_dir
    from harness.crawl.login import open_for_login

    profile = profile_dir(args.profiles, args.persona)
    open_for_login(profile, _settings(args), args.url)
    return 0
