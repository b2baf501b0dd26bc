"""``harness crawl sync`` (cookie-sync pairs and a domain's partners) and ``harness crawl import``
(OpenWPM databases, the study's per-site bid files, Amazon's advertising audiences).

:func:`add_commands` adds both to the subcommands of ``harness crawl`` (``crawl_cmd`` calls it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.args import add_format

if TYPE_CHECKING:
    from harness.crawl.sync import Partner

PARTNER_FIELDS = ["domain", "receives", "sends", "personas", "visits", "carriers"]


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``sync`` and ``import`` to the subcommands of ``harness crawl``."""
    sync = commands.add_parser(
        "sync",
        help="find identifiers one domain set that travelled to another; list a domain's partners",
        description="Read a crawl directory's requests, cookie and storage writes (requests.jsonl, "
        "cookies.jsonl, storage.jsonl, at its top or in per-persona folders), find cookie-sync pairs "
        "per persona and visit, write sync.jsonl and tables/sync.parquet and .csv into it, and print the "
        "partners of a domain: the domains that receive its identifiers or send theirs to it.",
    )
    sync.add_argument("crawl_dir", metavar="CRAWL_DIR", type=Path)
    sync.add_argument(
        "--partners-of",
        metavar="DOMAIN",
        default="amazon-adsystem.com",
        help="whose partners to list (default amazon-adsystem.com, Amazon's ad system)",
    )
    sync.add_argument("--format", choices=("table", "json", "csv"), default="table")
    sync.set_defaults(func=run_sync)
    _add_imports(commands)


def _add_imports(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import",
        help="convert other tools' data into the files harness reads",
        description="Convert an OpenWPM database into crawl records, the study's per-site Prebid bid files "
        "into bid visits, and Amazon's advertising audiences into interests, for `harness crawl sync` and "
        "`harness ads`.",
    )
    kinds = parser.add_subparsers(dest="import_kind", metavar="KIND")
    kinds.required = True
    openwpm = kinds.add_parser(
        "openwpm",
        help="an OpenWPM crawl database -> requests.jsonl and cookies.jsonl",
        description="Read OpenWPM's SQLite tables http_requests and javascript_cookies (and http_responses, "
        "http_redirects and site_visits when present) into a crawl directory's requests.jsonl and "
        "cookies.jsonl, one persona per database (the study ran one browser per persona).",
    )
    openwpm.add_argument("database", metavar="DB", type=Path, help="OpenWPM's crawl-data.sqlite")
    openwpm.add_argument("--persona", required=True, help="the persona whose browser made this crawl")
    openwpm.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DIR", help="crawl directory to write into"
    )
    add_format(openwpm, csv=False)
    openwpm.set_defaults(func=run_import_openwpm)
    bids = kinds.add_parser(
        "study-bids",
        help="per-site Prebid bid files (getBidResponses() JSON) -> bid visits for `harness ads`",
        description="Read one JSON file per site and persona holding what pbjs.getBidResponses() returned "
        "(or a visit object with persona, site, time and getBidResponses/getAllWinningBids), and write the "
        "visits as JSON lines that `harness ads` reads. Persona and site come from the file's fields, "
        "else from its path through --name-pattern, else --persona.",
    )
    bids.add_argument("files", nargs="+", metavar="FILE", type=Path, help="JSON files, or folders of them")
    bids.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="JSON lines file to write")
    bids.add_argument("--persona", help="persona of every file that names none")
    bids.add_argument(
        "--name-pattern",
        metavar="REGEX",
        default=None,
        help="regular expression with named groups persona and/or site, matched against each file's path "
        "relative to the folder given (default: PERSONA/SITE.json or PERSONA_SITE.json)",
    )
    bids.add_argument(
        "--time",
        metavar="TIME",
        help="visit time of files that name none (ISO 8601 with offset, or epoch seconds; default: the "
        "file's modification time)",
    )
    add_format(bids, csv=False)
    bids.set_defaults(func=run_import_bids)
    audiences = kinds.add_parser(
        "amazon-audiences",
        help="Amazon 'Request your data' Advertising *Audiences.csv -> interests for `harness ads`",
        description="Read the Advertising.*Audiences.csv files of Amazon's data export (Amazon audiences, "
        "third-party audiences, advertiser audiences) of one persona's account and write interest rows "
        "(persona,interest,category,source) that `harness ads` reads.",
    )
    audiences.add_argument("files", nargs="+", metavar="FILE", type=Path, help="*Audiences.csv files")
    audiences.add_argument("--persona", required=True, help="the persona whose account made the export")
    audiences.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="CSV file to write")
    add_format(audiences, csv=False)
    audiences.set_defaults(func=run_import_audiences)


def run_sync(args: argparse.Namespace) -> int:
    from harness.cli.console import err, print_json, warn
    from harness.crawl.sync import find_syncs, partners_of, read_crawl, site_domain, write_syncs

    with err.status("reading the crawl"):
        requests, cookies, storage = read_crawl(args.crawl_dir)
    with err.status(f"looking for syncs in {len(requests)} requests"):
        result = find_syncs(requests, cookies, storage)
    written = write_syncs(args.crawl_dir, result.pairs)
    domain = site_domain(args.partners_of)
    partners = partners_of(result.pairs, domain)
    per_persona = {persona: sum(p.persona == persona for p in result.pairs) for persona in result.personas}
    if args.format == "json":
        print_json(
            {
                "pairs": len(result.pairs),
                "pairs_per_persona": per_persona,
                "partners_of": domain,
                "partners": [vars(partner) for partner in partners],
                "files": [str(path) for path in written],
                "warnings": result.warnings,
            }
        )
        return 0
    for message in result.warnings:
        warn(message)
    if args.format == "csv":
        _partners_csv(partners)
    else:
        _partners_table(domain, partners, per_persona, written)
    return 0


def _partners_csv(partners: list[Partner]) -> None:
    import pandas as pd

    from harness.cli.console import print_csv

    print_csv(pd.DataFrame([vars(p) for p in partners], columns=PARTNER_FIELDS))


def _partners_table(domain: str, partners: list[Partner], per_persona: dict[str, int], written: list[Path]) -> None:
    from rich import box
    from rich.table import Table

    from harness.cli.console import out, plain

    counts = ", ".join(f"{persona} {n}" for persona, n in per_persona.items())
    out.print(plain(f"sync pairs: {sum(per_persona.values())} ({counts}); written: {', '.join(map(str, written))}"))
    title = f"partners of {domain} (receives: pairs {domain} -> partner; sends: partner -> {domain})"
    table = Table(title=plain(title), box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for column in PARTNER_FIELDS:
        if column in ("receives", "sends", "visits"):
            table.add_column(column, justify="right")
        else:
            table.add_column(column, overflow="fold", min_width={"domain": 20, "carriers": 8}.get(column))
    for p in partners:
        personas, carriers = plain(", ".join(p.personas)), ", ".join(p.carriers)
        table.add_row(plain(p.domain), str(p.receives), str(p.sends), personas, str(p.visits), carriers)
    out.print(table)


def run_import_openwpm(args: argparse.Namespace) -> int:
    from harness.cli.console import out, print_json
    from harness.crawl.openwpm import import_openwpm

    counts = import_openwpm(args.database, args.persona, args.output)
    if args.format == "json":
        doc = {"requests": counts.requests, "cookies": counts.cookies, "visits": counts.visits}
        print_json({**doc, "output": str(args.output)})
        return 0
    out.print(f"{counts.requests} requests, {counts.cookies} cookie writes, {counts.visits} visits -> {args.output}")
    return 0


def run_import_bids(args: argparse.Namespace) -> int:
    from harness.ads.imports import import_study_bids
    from harness.cli.console import out, print_json, warn

    summary = import_study_bids(args.files, args.output, args.persona, args.name_pattern, args.time)
    for message in summary.warnings:
        warn(message)
    if args.format == "json":
        doc = {"visits": summary.visits, "bids": summary.bids, "files": summary.files}
        print_json({**doc, "output": str(args.output)})
        return 0
    out.print(f"{summary.visits} visits, {summary.bids} bids from {summary.files} files -> {args.output}")
    return 0


def run_import_audiences(args: argparse.Namespace) -> int:
    from harness.ads.imports import import_amazon_audiences
    from harness.cli.console import out, print_json

    rows = import_amazon_audiences(args.files, args.persona, args.output)
    if args.format == "json":
        print_json({"persona": args.persona, "audiences": rows, "output": str(args.output)})
        return 0
    out.print(f"{rows} audiences of {args.persona} -> {args.output}")
    return 0
