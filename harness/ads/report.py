"""The ads results as HTML: a section the run report embeds, or a standalone offline page.

Figures are matplotlib PNGs embedded as base64 data URIs (no external files, scripts or CSS);
every string from the data is HTML-escaped, and ``$`` is escaped for matplotlib's mathtext.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from harness.ads.result import AdsResult, CpmComparison
from harness.files import atomic_write_text

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.yes { font-weight: bold; color: #a00; }
img { max-width: 100%; }
"""


def _label(text: str) -> str:
    return text.replace("$", r"\$")  # a "$" would start mathtext in matplotlib


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
    axes.set_xlabel("ratio of median CPM to the control's (95% interval; filled: significant)")
    axes.set_title(_label(title))
    return figure


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], marked: Sequence[bool] = ()) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(f"<td>{html.escape(cell)}</td>" for cell in row[:-1])
        last = (
            f'<td class="yes">{html.escape(row[-1])}</td>'
            if index < len(marked) and marked[index]
            else f"<td>{html.escape(row[-1])}</td>"
        )
        body.append(f"<tr>{cells}{last}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _interval(ci: Sequence[float | None]) -> str:
    return "–" if ci[0] is None else f"{_number(ci[0])}–{_number(ci[1])}"


def _comparison_table(rows: Sequence[CpmComparison], first: str) -> str:
    header = [
        first,
        "n",
        "n control",
        "median",
        "median control",
        "ratio",
        "95% interval",
        "p (MWU)",
        "p adj.",
        "p (perm.)",
        "significant",
    ]
    cells = [
        [
            row.persona if first == "persona" else f"{row.persona} / {row.bidder or row.group}",
            str(row.n),
            str(row.n_control),
            _number(row.median_cpm),
            _number(row.median_cpm_control),
            _number(row.ratio),
            _interval(row.ratio_ci),
            _number(row.p_value),
            _number(row.p_adjusted),
            _number(row.p_permutation),
            "yes" if row.significant else "no",
        ]
        for row in rows
    ]
    return _table(header, cells, [row.significant for row in rows])


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
        parts.append(_comparison_table(result.comparisons, "persona"))
    bidders = [row for comparison in result.comparisons for row in comparison.per_bidder or []]
    if bidders:
        parts.append("<h3>Per bidder</h3>" + _comparison_table(bidders, "persona / bidder"))
    if result.by_partnership:
        partners = ", ".join(result.partners) or "none found"
        title = f"By bidder group: partners of {result.partners_of} ({partners})"
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(_comparison_table(result.by_partnership, "persona / bidders"))
    if result.before_after:
        parts.append("<h3>After the first utterance against before it</h3>")
        parts.append(
            _table(
                [
                    "persona",
                    "n before",
                    "n after",
                    "median before",
                    "median after",
                    "ratio",
                    "95% interval",
                    "p (MWU)",
                    "p adj.",
                    "significant",
                ],
                [
                    [
                        row.persona,
                        str(row.n_before),
                        str(row.n_after),
                        _number(row.median_cpm_before),
                        _number(row.median_cpm_after),
                        _number(row.ratio),
                        _interval(row.ratio_ci),
                        _number(row.p_value),
                        _number(row.p_adjusted),
                        "yes" if row.significant else "no",
                    ]
                    for row in result.before_after
                ],
                [row.significant for row in result.before_after],
            )
        )
    if result.enrichment:
        parts.append("<h3>Categories of audio ads and interests (Fisher's exact test, Holm-corrected)</h3>")
        parts.append(
            _table(
                [
                    "dataset",
                    "persona",
                    "category",
                    "count / total",
                    "control count / total",
                    "odds ratio",
                    "p",
                    "p adj.",
                    "significant",
                ],
                [
                    [
                        row.dataset,
                        row.persona,
                        row.category,
                        f"{row.count} / {row.total}",
                        f"{row.count_control} / {row.total_control}",
                        _number(row.odds_ratio),
                        _number(row.p_value),
                        _number(row.p_adjusted),
                        "yes" if row.significant else "no",
                    ]
                    for row in result.enrichment
                ],
                [row.significant for row in result.enrichment],
            )
        )
    if result.warnings:
        items = "".join(f"<li>{html.escape(message)}</li>" for message in result.warnings)
        parts.append(f"<h3>Warnings</h3><ul>{items}</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def ads_report_html(result: AdsResult) -> str:
    """A complete offline HTML page holding :func:`ads_section_html`."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Ads comparison</title><style>{_STYLE}</style></head><body>\n"
        f"{ads_section_html(result)}\n</body></html>\n"
    )


def write_report(path: str | Path, result: AdsResult) -> Path:
    """Write the standalone page atomically."""
    return atomic_write_text(path, ads_report_html(result))
