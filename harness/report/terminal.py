"""A rich summary of a correlated run for the terminal (strings shown as text, never as markup)."""

from __future__ import annotations

import numbers
from typing import Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from harness.report.html import flagged_endpoints
from harness.rundir.analysis import Summary
from harness.termtable import keep_names
from harness.textsafe import terminal_text


def _t(value: Any) -> Text:
    """A cell: names from the capture are shown with their control characters inert, numbers for
    people (thousands separated, never an exponent above 1)."""
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, numbers.Integral):
        return Text(f"{int(value):,}")
    if isinstance(value, numbers.Real):
        if pd.isna(value):
            return Text("")
        return Text(f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}")
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return Text(terminal_text(", ".join(map(str, list(value)))))
    return Text("" if value is None else terminal_text(str(value)))


def _seconds(value: float) -> Text:
    """A span of seconds, with hours or minutes beside it when long: ``50,012 s (13.9 h)``."""
    if value >= 3600:
        return Text(f"{value:,.0f} s ({value / 3600:.1f} h)")
    if value >= 120:
        return Text(f"{value:,.0f} s ({value / 60:.1f} min)")
    return Text(f"{value:.1f} s")


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    return table


def summary_renderable(summary: Summary, tables: dict[str, pd.DataFrame]) -> Group:
    """Counts, clock alignment, the flagged endpoints and the attributed (skill, endpoint) pairs."""
    clock = summary.clock
    head = Table(title=Text(terminal_text(f"run {summary.run_id}")), show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    for key, value in summary.counts.model_dump().items():
        if key == "background_s":
            head.add_row(Text("background"), _seconds(value))
        else:
            head.add_row(Text(key.replace("_", " ")), _t(value))
    head.add_row(Text("clock"), Text(f"{clock.method} {clock.offset_s:+.4f} s {clock.drift_ppm:+.1f} ppm"))
    parts: list[Any] = [keep_names(head, 0)]
    flagged = flagged_endpoints(tables)
    if len(flagged):
        t = _table(
            "third-party and ad/tracking endpoints",
            ("endpoint", "category", "party", "ad/track", "contacts", "attributed to"),
        )
        for r in flagged.itertuples(index=False):
            t.add_row(
                _t(r.endpoint_id),
                _t(r.category),
                _t(r.party),
                Text("yes" if r.ad_or_tracking else ""),
                _t(r.contacts),
                _t(r.attributed_to),
            )
        parts.append(keep_names(t, 0))
    attributions = tables["attributions"]
    hits = attributions[attributions["attributed"]]
    if len(hits):
        category = tables["endpoints"].set_index("endpoint_id")["category"]
        t = _table(
            "attributed endpoints per skill", ("skill", "endpoint", "category", "contacted", "background", "p adj.")
        )
        for r in hits.itertuples(index=False):
            t.add_row(
                _t(r.skill_name),
                _t(r.endpoint_id),
                _t(category.get(r.endpoint_id)),
                Text(f"{r.contacted}/{r.utterances}"),
                _t(r.background_rate),
                _t(r.p_adjusted),
            )
        parts.append(keep_names(t, 0, 1))
    for message in summary.warnings:
        parts.append(Text(terminal_text(f"warning: {message}"), style="yellow"))
    return Group(*parts)
