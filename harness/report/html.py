"""The run report: one offline HTML file (inline CSS, plots as base64 PNG, no scripts).

Every string that comes from a script, a capture or a result file goes through ``html.escape``
(quotes included), so a skill named ``<script>`` or a hostile SNI is shown, never run.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.ads.report import ads_section_html
from harness.ads.result import AdsResult
from harness.report.timeline import timeline_figure
from harness.rundir.analysis import Summary

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 110em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fde8e8; }
.warn { color: #8a4b00; }
img { max-width: 100%; }
"""


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def esc(value: Any) -> str:
    return html.escape("" if _missing(value) else str(value), quote=True)


def _png(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _cell(value: Any) -> str:
    if _missing(value):
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else ''}</td>"
    if isinstance(value, float):
        return "<td></td>" if pd.isna(value) else f'<td class="n">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value}</td>'
    if isinstance(value, (list, tuple, np.ndarray)):
        return f"<td>{'<br>'.join(esc(v) for v in list(value))}</td>"
    return f"<td>{esc(value)}</td>"


def table(frame: pd.DataFrame, columns: Sequence[str], flag: Iterable[bool] | None = None) -> str:
    """An HTML table of ``columns``; rows where ``flag`` is true are highlighted."""
    if frame.empty:
        return "<p>(none)</p>"
    flags = list(flag) if flag is not None else [False] * len(frame)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for marked, record in zip(flags, frame[list(columns)].itertuples(index=False), strict=False):
        cells = "".join(_cell(v.item() if isinstance(v, np.generic) else v) for v in record)
        body.append(f'<tr class="flag">{cells}</tr>' if marked else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _when(ns: Any) -> str:
    return (
        ""
        if ns is None or pd.isna(ns)
        else datetime.fromtimestamp(int(ns) / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    )


FLAGGED_COLUMNS = ["endpoint_id", "category", "party", "organization", "ad_or_tracking", "contacts", "attributed_to"]


def flagged_endpoints(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Third-party and ad/tracking endpoints the device contacted, with the skills they are attributed to."""
    endpoints, contacts, attributions = tables["endpoints"], tables["contacts"], tables["attributions"]
    if contacts.empty:
        return pd.DataFrame(columns=FLAGGED_COLUMNS)
    seen = contacts.groupby("endpoint_id").size().rename("contacts").to_frame()
    info = endpoints.set_index("endpoint_id")[["category", "party", "organization", "ad_or_tracking"]]
    seen = seen.join(info, how="left")
    hits = (
        attributions[attributions["attributed"]]
        .groupby("endpoint_id")["skill_name"]
        .agg(lambda s: sorted(set(map(str, s))))
    )
    seen["attributed_to"] = hits.reindex(seen.index).map(lambda v: v if isinstance(v, list) else [])
    keep = seen["ad_or_tracking"].fillna(False).astype(bool) | seen["party"].isin(["third_party", "skill_vendor"])
    out = seen[keep].reset_index().sort_values(["ad_or_tracking", "contacts"], ascending=[False, False])
    return out[FLAGGED_COLUMNS]


def report_html(summary: Summary, tables: dict[str, pd.DataFrame], ads: AdsResult | None = None) -> str:
    """The whole report page."""
    utterances, activations = tables["utterances"], tables["activations"]
    attributions = tables["attributions"].merge(
        tables["endpoints"][
            ["endpoint_id", "registrable_domain", "organization", "party", "category", "ad_or_tracking"]
        ],
        how="left",
        on="endpoint_id",
    )
    counts, clock = summary.counts.model_dump(), summary.clock
    top = flagged_endpoints(tables)
    personas = sorted(set(map(str, utterances["persona_id"]))) if len(utterances) else []
    parts = [
        f"<h1>Run {esc(summary.run_id)}</h1>",
        (
            f"<p>Persona(s): {esc(', '.join(personas)) or '–'}; device {esc(summary.device)}; "
            f"captures: {esc(', '.join(summary.captures))}</p>"
        ),
        "<h2>Third-party and ad/tracking endpoints</h2>",
        table(top, list(top.columns), top["ad_or_tracking"].astype(bool).tolist() if len(top) else None),
    ]
    if summary.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in summary.warnings)
        parts.append(f'<h2>Warnings</h2><ul class="warn">{items}</ul>')
    parts.append(
        "<h2>Summary</h2><p>"
        + "; ".join(f"{esc(k.replace('_', ' '))}: {esc(v)}" for k, v in counts.items())
        + "</p><p>Clock: "
        + esc(
            f"{clock.method}, offset {clock.offset_s:+.6f} s, drift {clock.drift_ppm:+.2f} ppm, "
            f"{clock.markers} pairs, residual jitter p50/p99/max "
            + "/".join(
                "–" if v is None else f"{v * 1000:.2f}"
                for v in (clock.jitter_p50_s, clock.jitter_p99_s, clock.jitter_max_s)
            )
            + " ms"
        )
        + "</p>"
    )
    parts.append("<h2>Timeline</h2>")
    parts.append(
        _png(timeline_figure(tables), "timeline of utterances, answers, activations and contacts per endpoint")
    )
    view = utterances.assign(onset_utc=utterances["onset_ns"].map(_when)) if len(utterances) else utterances
    parts.append("<h2>Utterances</h2>")
    parts.append(
        table(
            view,
            [
                "plan_index",
                "persona_id",
                "skill_name",
                "utterance_id",
                "turn",
                "attempt",
                "text",
                "onset_utc",
                "answer_duration_s",
                "activation_id",
                "activation_lag_s",
                "activation_bytes_up",
                "endpoint_ids",
                "scores",
            ],
            utterances["activation_id"].isna().tolist() if len(utterances) else None,
        )
    )
    parts.append("<h2>Endpoints per skill</h2>")
    parts.append(
        table(
            attributions,
            [
                "skill_name",
                "endpoint_id",
                "registrable_domain",
                "organization",
                "party",
                "category",
                "ad_or_tracking",
                "utterances",
                "contacted",
                "background_rate",
                "other_skills_rate",
                "p_value",
                "p_adjusted",
                "attributed",
            ],
            attributions["ad_or_tracking"].fillna(False).astype(bool).tolist() if len(attributions) else None,
        )
    )
    if len(activations):
        shown = activations.assign(
            onset_utc=activations["onset_capture_ns"].map(_when),
            duration_s=(activations["end_capture_ns"] - activations["onset_capture_ns"]) / 1e9,
        )
        parts.append("<h2>Activations</h2>")
        parts.append(
            table(
                shown,
                ["activation_id", "onset_utc", "duration_s", "bytes_up", "bursts", "endpoint_ids", "utterance_seq"],
            )
        )
    if ads is not None:
        parts.append(ads_section_html(ads))
    title = f"harness report {summary.run_id}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
