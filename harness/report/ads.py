"""The ads results as HTML: a section the run report embeds, or a standalone offline page.

Figures are matplotlib PNGs embedded as base64 data URIs (no external files); log axes are
labelled with plain numbers at a spacing that fits the range (never crowded minor labels).
Tables are the run report's (:func:`harness.report.tables.table`: human headers with units,
sortable and filterable offline); every string from the data is HTML-escaped, and ``$`` is
escaped for matplotlib's mathtext.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from harness.ads.result import AdsResult, CpmComparison
from harness.files import atomic_write_text
from harness.report.page import page
from harness.report.tables import table

# column -> (header, format of harness.report.tables): the ads tables' headers, with units
ADS_COLUMNS: dict[str, tuple[str, str]] = {
    "persona": ("Persona", "text"),
    "bidder": ("Bidder", "text"),
    "n": ("Bids", "int"),
    "n_control": ("Bids, control", "int"),
    "median_cpm": ("Median CPM", "num"),
    "median_cpm_control": ("Median CPM, control", "num"),
    "ratio": ("Ratio of medians", "num"),
    "interval": ("95 % interval", "text"),
    "p_value": ("p (Mann-Whitney U)", "p"),
    "p_adjusted": ("p adjusted (Holm)", "p"),
    "p_permutation": ("p (permutation)", "p"),
    "significant": ("Significant", "bool"),
    "n_before": ("Bids before", "int"),
    "n_after": ("Bids after", "int"),
    "median_cpm_before": ("Median CPM before", "num"),
    "median_cpm_after": ("Median CPM after", "num"),
    "dataset": ("Data", "text"),
    "category": ("Category", "text"),
    "share": ("Count / total", "text"),
    "share_control": ("Control count / total", "text"),
    "odds_ratio": ("Odds ratio", "num"),
    "p_fisher": ("p (Fisher)", "p"),
}


def _label(text: str) -> str:
    return text.replace("$", r"\$")  # a "$" would start mathtext in matplotlib


def _log_axis(axis: Axis, low: float, high: float) -> None:
    """Plain-number labels on a log axis from ``low`` to ``high``: about six evenly spaced round
    numbers within a decade, 1-2-5 over a few, powers of ten beyond; no labels on minor ticks."""
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    if decades <= 1.2:
        axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    else:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,), numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _png(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def distribution_figure(result: AdsResult) -> Figure:
    """Box plots of CPM per persona on a log scale (whiskers 5th-95th percentile, x the mean)."""
    figure = Figure(figsize=(8, 0.5 + 0.45 * max(2, len(result.distributions))))
    axes = figure.add_subplot()
    boxes = [
        {
            "label": _label(f"{d.persona} (n={d.n})"),
            "whislo": d.q05,
            "q1": d.q25,
            "med": d.median,
            "q3": d.q75,
            "whishi": d.q95,
            "mean": d.mean,
            "fliers": [d.min, d.max],
        }
        for d in result.distributions
    ]
    if boxes:
        axes.bxp(boxes, orientation="horizontal", showmeans=True, meanprops={"marker": "x"})
    axes.set_xscale("log")
    _log_axis(axes.xaxis, *axes.get_xlim())
    axes.set_xlabel(_label(f"CPM ({result.currency})"))
    axes.set_title(_label(f"Bids per persona (control: {result.control})"))
    return figure


def ratio_figure(rows: Sequence[CpmComparison], title: str) -> Figure:
    """Ratio of medians with its bootstrap interval per row, log scale; filled = significant."""
    figure = Figure(figsize=(8, 0.5 + 0.45 * max(2, len(rows))))
    axes = figure.add_subplot()
    for y, row in enumerate(rows):
        lo, hi = row.ratio_ci
        if lo is not None and hi is not None:
            axes.plot([lo, hi], [y, y], color="tab:blue")
        axes.plot([row.ratio], [y], "o", color="tab:blue", markerfacecolor="tab:blue" if row.significant else "white")
    axes.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.set_yticks(
        range(len(rows)), [_label(row.persona + (f" / {row.bidder}" if row.bidder else "")) for row in rows]
    )
    axes.set_xscale("log")
    _log_axis(axes.xaxis, *axes.get_xlim())
    axes.set_xlabel("ratio of median CPM to the control's (95% interval; filled: significant)")
    axes.set_title(_label(title))
    return figure


def _interval(ci: Sequence[float | None]) -> str:
    return "" if ci[0] is None or ci[1] is None else f"{ci[0]:.3g}–{ci[1]:.3g}"


def _table(rows: list[dict[str, object]], label: str) -> str:
    frame = pd.DataFrame(rows)
    return table(frame, list(frame.columns), frame["significant"].tolist(), label, ADS_COLUMNS)


def _comparison_rows(rows: Sequence[CpmComparison], bidders: bool) -> list[dict[str, object]]:
    return [
        {
            "persona": row.persona,
            **({"bidder": row.bidder} if bidders else {}),
            "n": row.n,
            "n_control": row.n_control,
            "median_cpm": row.median_cpm,
            "median_cpm_control": row.median_cpm_control,
            "ratio": row.ratio,
            "interval": _interval(row.ratio_ci),
            "p_value": row.p_value,
            "p_adjusted": row.p_adjusted,
            "p_permutation": row.p_permutation,
            "significant": row.significant,
        }
        for row in rows
    ]


def ads_section_html(result: AdsResult) -> str:
    """An HTML ``<section>`` with the plots and tables of ``result``, for embedding in a report."""
    parts = [
        '<section class="ads">',
        "<h2>Ads: personas against the control</h2>",
        f"<p>Control: <b>{html.escape(result.control)}</b> ({html.escape(result.control_source)}); CPMs in "
        f"{html.escape(result.currency)}; Mann-Whitney U p-values Holm-corrected across personas, "
        f"significant below {result.alpha:g}; {result.resamples} bootstrap resamples, seed {result.seed}.</p>",
    ]
    if result.distributions:
        parts.append(_png(distribution_figure(result), "CPM distribution per persona, log scale"))
    if result.comparisons:
        parts.append(
            _png(ratio_figure(result.comparisons, "Ratio of median CPM to the control"), "ratio of medians per persona")
        )
        parts.append(_table(_comparison_rows(result.comparisons, False), f"CPM ({result.currency}) per persona"))
    bidders = [row for comparison in result.comparisons for row in comparison.per_bidder or []]
    if bidders:
        parts.append(
            "<h3>Per bidder</h3>" + _table(_comparison_rows(bidders, True), f"CPM ({result.currency}) per bidder")
        )
    if result.before_after:
        parts.append("<h3>After the first utterance against before it</h3>")
        rows = [
            {
                "persona": row.persona,
                "n_before": row.n_before,
                "n_after": row.n_after,
                "median_cpm_before": row.median_cpm_before,
                "median_cpm_after": row.median_cpm_after,
                "ratio": row.ratio,
                "interval": _interval(row.ratio_ci),
                "p_value": row.p_value,
                "p_adjusted": row.p_adjusted,
                "significant": row.significant,
            }
            for row in result.before_after
        ]
        parts.append(_table(rows, f"CPM ({result.currency}) after against before"))
    if result.enrichment:
        parts.append("<h3>Categories of audio ads and interests (Fisher's exact test, Holm-corrected)</h3>")
        rows = [
            {
                "dataset": row.dataset,
                "persona": row.persona,
                "category": row.category,
                "share": f"{row.count} / {row.total}",
                "share_control": f"{row.count_control} / {row.total_control}",
                "odds_ratio": row.odds_ratio,
                "p_fisher": row.p_value,
                "p_adjusted": row.p_adjusted,
                "significant": row.significant,
            }
            for row in result.enrichment
        ]
        parts.append(_table(rows, "categories against the control"))
    if result.warnings:
        items = "".join(f"<li>{html.escape(message)}</li>" for message in result.warnings)
        parts.append(f"<h3>Warnings</h3><ul>{items}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def ads_report_html(result: AdsResult) -> str:
    """A complete offline HTML page holding :func:`ads_section_html`."""
    return page("Ads comparison", ads_section_html(result))


def write_report(path: str | Path, result: AdsResult) -> Path:
    """Write the standalone page atomically."""
    return atomic_write_text(path, ads_report_html(result))
