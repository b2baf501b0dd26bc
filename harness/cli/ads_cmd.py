"""``harness ads``: compare each persona's ads with the control's."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import TYPE_CHECKING, Any

from harness.cli.args import add_format, add_quiet, number
from harness.errors import HarnessError
from harness.textsafe import csv_safe_row, terminal_text

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from harness.ads.result import AdsResult, CpmComparison

CSV_FIELDS = [
    "persona",
    "control",
    "bidder",
    "n",
    "n_control",
    "median_cpm",
    "median_cpm_control",
    "mean_cpm",
    "mean_cpm_control",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "test",
    "p_value",
    "p_adjusted",
    "p_permutation",
    "p_permutation_adjusted",
    "significant",
    "group",
]


def _currency(text: str) -> str:
    try:
        from harness.ads.currency import currency_code

        return currency_code(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ads",
        help="compare each persona's bids, audio ads and interests with the control's",
        description="Load header-bidding bids (Prebid JSON/JSON lines or flat CSV), audio ads (CSV/JSON "
        "lines) and advertising interests (CSV); compare each persona with the control: median CPM ratio "
        "with a bootstrap interval, Mann-Whitney U and permutation tests (Holm-corrected), per bidder, "
        "category enrichment (Fisher), and before/after the first utterance when run directories are given.",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="bids, audio ads or interests files (kind read from the content)"
    )
    parser.add_argument(
        "--control",
        metavar="PERSONA",
        help="the control persona (default: one named control/vanilla, else the run logs')",
    )
    add_format(parser)
    add_quiet(parser)
    parser.add_argument("--rates", metavar="FILE", help="conversion table: CSV or YAML of currency,rate_to_target")
    parser.add_argument("--currency", type=_currency, default="USD", help="currency to compare CPMs in (default USD)")
    parser.add_argument(
        "--alpha", type=number(float, 1e-9, 1.0), default=0.05, help="significance level (default 0.05)"
    )
    parser.add_argument("--seed", type=number(int, 0), default=0, help="seed of bootstrap and permutations (default 0)")
    parser.add_argument(
        "--resamples", type=number(int, 100), default=2000, help="bootstrap resamples and permutations (default 2000)"
    )
    parser.add_argument(
        "--min-n", type=number(int, 2), default=5, help="bids needed in each group to test a persona (default 5)"
    )
    parser.add_argument(
        "--min-bidder-n",
        type=number(int, 2),
        default=10,
        help="bids needed in each group to test a bidder (default 10)",
    )
    parser.add_argument("--strict", action="store_true", help="fail on the first bad row instead of skipping it")
    parser.add_argument("--report", metavar="FILE", help="also write a standalone HTML report with plots")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="DIR",
        help="bench run directories: first utterance per persona (before/after) and the control mark",
    )
    partners = parser.add_mutually_exclusive_group()
    partners.add_argument(
        "--sync",
        nargs="+",
        metavar="PATH",
        help="sync pairs (sync.jsonl of `harness crawl sync`, or crawl directories): compare the bids of "
        "the --partners-of domain's partners with those of the other bidders",
    )
    partners.add_argument(
        "--partners", metavar="FILE", help="the --partners-of domain's partners as a list (one domain per line)"
    )
    parser.add_argument(
        "--partners-of",
        metavar="DOMAIN",
        default="amazon-adsystem.com",
        help="whose partners split the bidders, with --sync or --partners (default amazon-adsystem.com)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the statistics and plotting stack would slow every `harness` start.
    from harness.ads import Options, Rates, analyse, load_files, load_rates, read_runs
    from harness.cli.console import print_json, progress, warn
    from harness.report.ads import write_report

    rates = load_rates(args.rates, args.currency) if args.rates else Rates(target=args.currency)
    with progress(args.quiet) as report:
        data = load_files(args.files, rates, strict=args.strict, progress=report)
    if not (data.bids or data.audio_ads or data.interests):
        raise HarnessError(data.nothing_usable())
    runs = read_runs(args.runs) if args.runs else None
    partnership = None
    if args.sync or args.partners:
        from harness.ads.partners import from_list, from_syncs

        partnership = (
            from_syncs(args.sync, args.partners_of) if args.sync else from_list(args.partners, args.partners_of)
        )
    options = Options(
        control=args.control,
        alpha=args.alpha,
        seed=args.seed,
        resamples=args.resamples,
        min_n=args.min_n,
        min_bidder_n=args.min_bidder_n,
        currency=args.currency,
        partnership=partnership,
    )
    with progress(args.quiet) as report:
        report("comparing with the control")
        result = analyse(data, options, runs)
        if args.report:
            report("drawing the report")
            write_report(args.report, result)
    if args.format == "json":
        print_json(result.model_dump(mode="json"))
        return 0
    for message in result.warnings:
        warn(message)
    if args.format == "csv":
        _write_csv(result)
    else:
        _print_tables(result)
    return 0


def _csv_row(row: CpmComparison) -> dict[str, object]:
    values = row.model_dump(exclude={"per_bidder", "ratio_ci"})
    values["ratio_ci_low"], values["ratio_ci_high"] = row.ratio_ci
    return values


def _write_csv(result: AdsResult) -> None:
    """The comparisons as CSV on stdout: formula-like names quoted, and on a terminal shown inert."""
    writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    on_terminal = sys.stdout.isatty()
    rows = [
        *result.comparisons,
        *(bidder for row in result.comparisons for bidder in row.per_bidder or []),
        *result.by_partnership,
    ]
    for row in rows:
        cells = csv_safe_row(_csv_row(row))
        if on_terminal:
            cells = {key: terminal_text(value) if isinstance(value, str) else value for key, value in cells.items()}
        writer.writerow(cells)


def _comparison_cells(row: Any, label: str) -> list[Any]:
    """One persona-against-control row's cells, after the persona and ``label`` (bidder or group)."""
    from harness.cli.console import plain

    return [
        plain(row.persona),
        plain(label),
        f"{row.n}/{row.n_control}",
        f"{_g(row.median_cpm)}/{_g(row.median_cpm_control)}",
        _ratio(row.ratio, row.ratio_ci),
        _p(row.p_value),
        _p(row.p_adjusted),
        _yes(row.significant),
    ]


def _g(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.2g}"


def _ratio(ratio: float | None, ci: list[float | None]) -> str:
    interval = "" if ci[0] is None else f" [{_g(ci[0])}–{_g(ci[1])}]"
    return f"{_g(ratio)}{interval}"


def _yes(flag: bool) -> Text:
    from rich.text import Text

    return Text("yes", style="bold red") if flag else Text("no")


def _table(title: str | Text, columns: list[str], left: int) -> Table:
    """A table whose first ``left`` columns are names (left-aligned; kept whole by :func:`_print`)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < left else "right")
    return table


def _print(table: Table) -> None:
    """Print an ads table with its name columns (the left-aligned ones) whole."""
    from harness.cli.console import out
    from harness.termtable import keep_names

    out.print(keep_names(table, *(i for i, c in enumerate(table.columns) if c.justify == "left")))


def _print_tables(result: AdsResult) -> None:
    from harness.cli.console import plain

    control = f"control: {result.control}"
    if result.comparisons:
        table = _table(
            plain(f"CPM ({result.currency}) per persona against the {control}"),
            ["persona", "bidder", "n/ctrl", "median/ctrl", "ratio [95% CI]", "p MWU", "p adj", "sig."],
            2,
        )
        for row in (item for comparison in result.comparisons for item in [comparison, *(comparison.per_bidder or [])]):
            table.add_row(*_comparison_cells(row, row.bidder or "all"))
        _print(table)
    if result.by_partnership:
        partners = ", ".join(result.partners) or "none found"
        table = _table(
            plain(f"CPM ({result.currency}) by bidder group: partners of {result.partners_of} ({partners})"),
            ["persona", "bidders", "n/ctrl", "median/ctrl", "ratio [95% CI]", "p MWU", "p adj", "sig."],
            2,
        )
        for row in result.by_partnership:
            table.add_row(*_comparison_cells(row, row.group or ""))
        _print(table)
    if result.before_after:
        table = _table(
            "CPM after each persona's first utterance against before it",
            ["persona", "n before/after", "median before/after", "ratio [95% CI]", "p MWU", "p adj", "sig."],
            1,
        )
        for row in result.before_after:
            table.add_row(
                plain(row.persona),
                f"{row.n_before}/{row.n_after}",
                f"{_g(row.median_cpm_before)}/{_g(row.median_cpm_after)}",
                _ratio(row.ratio, row.ratio_ci),
                _p(row.p_value),
                _p(row.p_adjusted),
                _yes(row.significant),
            )
        _print(table)
    if result.enrichment:
        table = _table(
            plain(f"Categories against the {control} (Fisher's exact test)"),
            ["data", "persona", "category", "count/total", "ctrl", "odds ratio", "p", "p adj", "sig."],
            3,
        )
        for row in result.enrichment:
            table.add_row(
                plain(row.dataset),
                plain(row.persona),
                plain(row.category),
                f"{row.count}/{row.total}",
                f"{row.count_control}/{row.total_control}",
                _g(row.odds_ratio),
                _p(row.p_value),
                _p(row.p_adjusted),
                _yes(row.significant),
            )
        _print(table)
