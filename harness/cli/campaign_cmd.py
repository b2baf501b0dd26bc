"""``harness campaign``: many personas' runs, crawls and ad files as one dataset, and the study's tables."""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.cli.args import number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="a campaign of personas: status, one Parquet dataset (DuckDB), the study's tables and report",
        description="A campaign folder holds one manifest: the personas, each with its bench (device address, "
        "capture point), its run directories, crawl directories and ad files, and which persona is the control. "
        "`analyse` turns them into one Parquet dataset partitioned by persona and source (incrementally, on all "
        "local cores or a Dask cluster), `query` runs SQL on it with DuckDB, `report` writes the study's tables "
        "(CSV) and one offline HTML report.",
    )
    sub = parser.add_subparsers(dest="campaign_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("init", help="create a campaign folder", description="Create a campaign folder (0700).")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--name", default="", help="the campaign's name (default: the folder's)")
    p.set_defaults(func=run_init)

    p = sub.add_parser(
        "add",
        help="add a persona's runs, crawls or ad files, its bench, or mark it the control",
        description="Add sources to a persona (created when new). Crawl directories and ad files may hold "
        "several personas: the persona's own rows are taken.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--persona", required=True, metavar="ID", help="the persona id the scripts, crawls and ads use")
    p.add_argument("--run", action="append", default=[], metavar="RUN_DIR", help="a run directory (repeatable)")
    p.add_argument("--crawl", action="append", default=[], metavar="CRAWL_DIR", help="a crawl directory (repeatable)")
    p.add_argument(
        "--ads", action="append", default=[], metavar="FILE", help="a bid, audio-ad or interest file (repeatable)"
    )
    p.add_argument("--device", metavar="ADDR", help="the persona's Echo's address in its captures")
    p.add_argument("--capture-point", metavar="SPEC", help="where its traffic is captured (interface or ssh://...)")
    p.add_argument("--control", action="store_true", help="this persona is the campaign's control")
    p.set_defaults(func=run_add)

    p = sub.add_parser(
        "status",
        help="per persona: runs, hours captured, utterances spoken/answered/verified, gaps, failures",
        description="Read every run directory's manifest and event log: hours captured, utterances spoken, "
        "answered and verified (an answer check matched; '-' when the runs carry none), gaps (no capture, or "
        "utterances without answers, longer than --gap) and failures (missing capture files, a capture that "
        "stopped while the run went on, lost devices, fatal errors, runs that never finished).",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--gap", type=number(float, 0.0), default=1800.0, metavar="S", help="gap threshold (default 1800 s)")
    p.set_defaults(func=run_status)

    p = sub.add_parser(
        "analyse",
        aliases=["analyze"],
        help="build the dataset: a Parquet partition per persona and source (only what changed)",
        description="Build or refresh the dataset: each source's partition is rebuilt when its input files "
        "changed (size or mtime), kept otherwise. Runs without an up-to-date analysis are correlated first. "
        "The work runs on a local Dask cluster (one worker process per core) or, with --scheduler, on a "
        "running Dask scheduler whose workers see the same files. A partition that fails after its retries "
        "is reported and keeps its previous version; the others land.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--workers", type=number(int, 1), metavar="N", help="local worker processes (default: every core)")
    p.add_argument(
        "--memory-limit", default="auto", metavar="SIZE", help="memory per local worker, e.g. 4GB (default auto)"
    )
    p.add_argument("--retries", type=number(int, 0), default=2, metavar="N", help="retries of a failed partition")
    p.add_argument("--force", action="store_true", help="rebuild every partition")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run_analyse)

    p = sub.add_parser(
        "query",
        help="run SQL on the dataset with DuckDB (every table a view)",
        description="Run one SQL statement on the dataset with an embedded DuckDB; every table of the dataset "
        "is a view with its columns plus persona and run.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("sql", metavar="SQL")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=run_query)

    p = sub.add_parser(
        "report",
        help="the study's tables (CSV in DIR/tables/) and one offline HTML report",
        description="From the dataset: organisations reached per persona and skill, third parties against the "
        "control, data flows (PoliCheck-style tuples), bids against the control (per bidder, before/after the "
        "first utterance, sync partners against the others), as CSV in DIR/tables/ and DIR/report.html.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--gap", type=number(float, 0.0), default=1800.0, metavar="S", help="gap threshold (default 1800 s)")
    p.add_argument("--seed", type=number(int, 0), default=0, help="seed of the bootstrap and permutation tests")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run_report)


def run_init(args: argparse.Namespace) -> int:
    from harness.campaign.manifest import init_campaign
    from harness.cli.console import out, plain

    folder = init_campaign(args.dir, args.name)
    out.print(plain(f"campaign folder {folder.root} (manifest {folder.manifest})"))
    return 0


def run_add(args: argparse.Namespace) -> int:
    from harness.campaign.manifest import add_persona, add_source, load, save
    from harness.cli.console import out, plain

    folder, campaign = load(args.dir)
    persona = add_persona(campaign, args.persona)
    added = 0
    for kind, paths in (("run", args.run), ("crawl", args.crawl), ("ads", args.ads)):
        for path in paths:
            added += add_source(folder, campaign, persona.id, kind, path)
    if args.device:
        persona.bench.device = args.device
    if args.capture_point:
        persona.bench.capture = args.capture_point
    if args.control:
        campaign.control = persona.id
    save(folder, campaign)
    out.print(plain(f"{persona.id}: {added} source(s) added; {len(persona.runs)} run(s), {len(persona.crawls)} "
                    f"crawl(s), {len(persona.ads)} ad file(s)"))  # fmt: skip
    return 0


def run_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.campaign.manifest import load
    from harness.campaign.status import campaign_status
    from harness.cli.console import out, plain, print_json

    folder, campaign = load(args.dir)
    status = campaign_status(folder, campaign, args.gap)
    if args.format == "json":
        print_json(status.model_dump(mode="json"))
        return 0
    table = Table(title=plain(f"campaign {status.name}"))
    for col in ("persona", "runs", "hours", "spoken", "answered", "verified", "gaps", "failures"):
        table.add_column(col, justify="left" if col == "persona" else "right")
    for p in status.personas:
        table.add_row(
            plain(p.persona + (" (control)" if p.control else "")),
            str(len(p.runs)),
            f"{p.capture_hours:.2f}",
            str(p.spoken),
            str(p.answered),
            "-" if p.verified is None else str(p.verified),
            str(len(p.gaps)),
            str(len(p.failures)),
        )
    out.print(table)
    for p in status.personas:
        for gap in p.gaps:
            out.print(plain(f"{p.persona}: gap ({gap.kind}) of {gap.hours:.2f} h from {_utc(gap.from_ns)}"))
        for failure in p.failures:
            out.print(plain(f"{p.persona}: {failure}"))
    return 0


def _utc(ns: int) -> str:
    from harness.report.tables import utc

    return utc(ns)


def run_analyse(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from harness.campaign.dataset import update
    from harness.campaign.engine import Engine
    from harness.campaign.manifest import load
    from harness.cli.console import err, out, plain, print_json, warn

    folder, campaign = load(args.dir)
    engine = Engine(args.scheduler, args.workers, args.memory_limit, args.retries)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"partitions on the {engine.describe()}", total=None)

        def done(key: str, ok: bool) -> None:
            progress.advance(task)

        result = update(folder, campaign, engine, args.force, done)
    failed = [{"partition": key, "error": message} for key, message in result.failed]
    if args.format == "json":
        print_json(
            {
                "built": [{"partition": b.spec.key, "rows": b.rows, "warnings": b.warnings} for b in result.built],
                "kept": result.kept,
                "dropped": result.dropped,
                "failed": failed,
            }
        )
    else:
        for built in result.built:
            for message in built.warnings:
                warn(f"{built.spec.key}: {message}")
        out.print(plain(f"{len(result.built)} partition(s) built, {len(result.kept)} up to date, "
                        f"{len(result.dropped)} dropped, {len(failed)} failed ({folder.dataset})"))  # fmt: skip
        for row in failed:
            out.print(plain(f"failed: {row['error']}"))
    return 1 if failed else 0


def run_query(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.campaign.dataset import connect
    from harness.campaign.manifest import load
    from harness.cli.console import out, plain, print_csv, print_json
    from harness.errors import HarnessError

    folder, _ = load(args.dir)
    con = connect(folder)
    import duckdb

    try:
        frame = con.sql(args.sql).df()
    except duckdb.Error as exc:
        raise HarnessError(f"query: {str(exc).splitlines()[0]}") from None
    except AttributeError:
        raise HarnessError("query: the statement returns no rows") from None
    if args.format == "json":
        print_json(json.loads(frame.to_json(orient="records", default_handler=str)))
        return 0
    if args.format == "csv":
        print_csv(frame.map(_listed))
        return 0
    table = Table()
    for col in frame.columns:
        table.add_column(plain(col))
    for row in frame.itertuples(index=False):
        table.add_row(*(plain(_text(v)) for v in row))
    out.print(table)
    return 0


def _listed(value: Any) -> Any:
    return list(value) if hasattr(value, "tolist") and not isinstance(value, str) else value


def _text(value: Any) -> str:
    value = _listed(value)
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def run_report(args: argparse.Namespace) -> int:
    from harness.ads.analysis import Options
    from harness.campaign.dataset import connect, is_current, plan
    from harness.campaign.manifest import load
    from harness.campaign.report import write_report, write_tables
    from harness.campaign.status import campaign_status
    from harness.campaign.study import study
    from harness.cli.console import out, plain, print_json, warn

    folder, campaign = load(args.dir)
    stale = [s.key for s in plan(folder, campaign) if not is_current(folder, s)]
    if stale:
        warn(f"{len(stale)} partition(s) missing or out of date (run `harness campaign analyse {folder.root}`)")
    result = study(connect(folder), campaign.control, Options(seed=args.seed))
    for message in result.warnings:
        warn(message)
    written = write_tables(folder, result)
    report = write_report(folder, campaign_status(folder, campaign, args.gap), result)
    if args.format == "json":
        print_json({"tables": [str(path) for path in written], "report": str(report), "warnings": result.warnings})
        return 0
    out.print(plain(f"tables: {', '.join(written)}"))
    out.print(plain(f"report: {report}"))
    return 0
