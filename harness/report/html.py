"""The run report: one offline HTML file (inline CSS, plots and answers as base64, one small
inline script that sorts and filters tables).

Every string that comes from a script, a capture or a result file goes through ``html.escape``
(quotes included), so a skill named ``<script>`` or a hostile SNI is shown, never run.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from harness.ads.result import AdsResult
from harness.report.ads import ads_section_html
from harness.report.audio import Answers
from harness.report.page import page
from harness.report.tables import Markup, esc, table
from harness.report.timeline import legend_items, timeline_figure
from harness.rundir.analysis import Summary

FLAGGED_PARTIES = ("third_party", "skill_vendor")


def _png(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


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
    keep = seen["ad_or_tracking"].fillna(False).astype(bool) | seen["party"].isin(FLAGGED_PARTIES)
    out = seen[keep].reset_index().sort_values(["ad_or_tracking", "contacts"], ascending=[False, False])
    return out[FLAGGED_COLUMNS]


def _flags(frame: pd.DataFrame) -> list[bool]:
    return (frame["ad_or_tracking"].fillna(False).astype(bool) | frame["party"].isin(FLAGGED_PARTIES)).tolist()


def ranked_attributions(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every (skill, endpoint) pair with the endpoint's classification, by evidence: third-party
    and ad/tracking endpoints first, then adjusted p-value ascending, then caused share descending."""
    info = tables["endpoints"][["endpoint_id", "registrable_domain", "organization", "party", "category"]]
    merged = tables["attributions"].merge(
        info.assign(ad_or_tracking=tables["endpoints"]["ad_or_tracking"]), how="left", on="endpoint_id"
    )
    merged["flagged"] = _flags(merged) if len(merged) else []
    merged["contacted"] = [f"{c} / {u}" for c, u in zip(merged["contacted"], merged["utterances"], strict=True)]
    return merged.sort_values(
        ["flagged", "p_adjusted", "caused_rate"], ascending=[False, True, False], na_position="last", kind="stable"
    )


def _audio(answer: Any) -> str:
    if answer is None:
        return ""
    if answer.audio_uri is None:
        return Markup(f"<small>{esc(answer.path)}</small>")
    return Markup(f'<audio controls preload="none" src="{esc(answer.audio_uri)}"></audio>')


def _utterance_view(utterances: pd.DataFrame, answers: Answers) -> pd.DataFrame:
    """Utterances with their attributed endpoints and scores in one column, transcript and audio."""
    found = [answers.by_seq.get(int(s)) for s in utterances["utterance_seq"]]
    return utterances.assign(
        endpoints=[
            [f"{e} ({s:.2f})" for e, s in zip(ids, scores, strict=False)]
            for ids, scores in zip(utterances["endpoint_ids"], utterances["scores"], strict=True)
        ],
        transcript=[a.transcript if a else None for a in found],
        audio=pd.Series([_audio(a) for a in found], index=utterances.index, dtype=object),  # Markup stays Markup
    )


UTTERANCE_COLUMNS = [
    "plan_index",
    "turn",
    "attempt",
    "text",
    "onset_ns",
    "answer_duration_s",
    "transcript",
    "audio",
    "activation_lag_s",
    "activation_bytes_up",
    "endpoints",
]
ATTRIBUTION_COLUMNS = [
    "endpoint_id",
    "organization",
    "party",
    "category",
    "ad_or_tracking",
    "contacted",
    "background_rate",
    "caused_rate",
    "other_skills_rate",
    "p_value",
    "p_adjusted",
    "attributed",
]


def skill_sections(tables: dict[str, pd.DataFrame], answers: Answers, traffic: bool) -> list[str]:
    """One section per skill: its tries (text, onset, answer, lag, attributed endpoints) and the
    endpoints tested against it, by evidence."""
    view = _utterance_view(tables["utterances"], answers)
    requests = view[view["kind"] == "request"]
    ranked = ranked_attributions(tables)
    columns = UTTERANCE_COLUMNS if traffic else UTTERANCE_COLUMNS[:-3]
    parts, nav = [], []
    skills = requests.drop_duplicates("skill_id")[["skill_id", "skill_name"]]
    for number, (skill_id, name) in enumerate(skills.itertuples(index=False), start=1):
        tries = requests[requests["skill_id"] == skill_id]
        pairs = ranked[ranked["skill_id"] == skill_id]
        hits = int(pairs["attributed"].sum())
        counted = f"{len(tries)} {'try' if len(tries) == 1 else 'tries'}" + (f", {hits} attributed" if traffic else "")
        nav.append(f'<li><a href="#skill-{number}">{esc(name)}</a> ({counted})</li>')
        parts.append(f'<section id="skill-{number}"><h3>{esc(name)}</h3>')
        parts.append(table(tries, columns, tries["activation_id"].isna().tolist() if traffic else None, "Tries"))
        if traffic:
            parts.append(table(pairs, ATTRIBUTION_COLUMNS, pairs["flagged"].tolist(), "Endpoints, by evidence"))
        parts.append("</section>")
    if not nav:
        return ["<p>(no requests)</p>"]
    return [f"<ul>{''.join(nav)}</ul>", *parts]


LEGEND_INTRO = (
    "Time runs left to right in seconds from the first event (capture clock). Each row is one kind of "
    "event; a bar spans its duration, a tick is one contact."
)


def _legend() -> str:
    items = "".join(
        f'<li><span class="swatch" style="background:{colour}"></span><b>{esc(name)}</b>: {esc(meaning)}</li>'
        for name, colour, meaning in legend_items()
    )
    return f'<p>{esc(LEGEND_INTRO)}</p><ul class="legend">{items}</ul>'


def _clock(summary: Summary) -> str:
    clock = summary.clock
    jitter = "/".join(
        "–" if v is None else f"{v * 1000:.2f}" for v in (clock.jitter_p50_s, clock.jitter_p99_s, clock.jitter_max_s)
    )
    return (
        f"{clock.method}, offset {clock.offset_s:+.6f} s, drift {clock.drift_ppm:+.2f} ppm, "
        f"{clock.markers} pairs, residual jitter p50/p99/max {jitter} ms"
    )


def report_html(
    summary: Summary, tables: dict[str, pd.DataFrame], ads: AdsResult | None = None, answers: Answers | None = None
) -> str:
    """The whole report page. A summary without captures is a run without traffic: the report
    then holds its timings and answers only."""
    answers = answers or Answers()
    traffic = bool(summary.captures)
    utterances = tables["utterances"]
    personas = sorted(set(map(str, utterances["persona_id"]))) if len(utterances) else []
    parts = [
        f"<h1>Run {esc(summary.run_id)}</h1>",
        f"<p>Persona(s): {esc(', '.join(personas)) or '–'}; device {esc(summary.device or '–')}; "
        f"captures: {esc(', '.join(summary.captures)) or '–'}</p>",
    ]
    if traffic:
        top = flagged_endpoints(tables)
        parts += [
            "<h2>Third-party and ad/tracking endpoints</h2>",
            table(top, list(top.columns), top["ad_or_tracking"].astype(bool).tolist() if len(top) else None),
        ]
    else:
        parts.append('<p class="note">No capture: traffic not analysed. This report holds timings and answers.</p>')
    warnings = [w for w in summary.warnings if traffic or w != "no capture: traffic not analysed"]
    if warnings or answers.notes:
        items = "".join(f"<li>{esc(w)}</li>" for w in [*warnings, *answers.notes])
        parts.append(f'<h2>Warnings</h2><ul class="warn">{items}</ul>')
    counts = summary.counts.model_dump() if traffic else {"utterances": summary.counts.utterances}
    parts.append(
        "<h2>Summary</h2><p>"
        + "; ".join(f"{esc(k.replace('_', ' '))}: {esc(v)}" for k, v in counts.items())
        + (f"</p><p>Clock: {esc(_clock(summary))}</p>" if traffic else "</p>")
    )
    parts.append("<h2>Timeline</h2>")
    parts.append(_legend())
    figure = _png(timeline_figure(tables), "timeline of utterances, answers, activations and contacts per endpoint")
    parts.append(f'<div class="box">{figure}</div>')
    parts.append("<h2>Skills</h2>")
    parts += skill_sections(tables, answers, traffic)
    parts.append("<h2>All utterances</h2>")
    view = _utterance_view(utterances, answers)
    columns = ["persona_id", "skill_name", "kind", *UTTERANCE_COLUMNS]
    parts.append(table(view, columns if traffic else columns[:-3]))
    activations = tables["activations"]
    if len(activations):
        shown = activations.assign(
            duration_s=(activations["end_capture_ns"] - activations["onset_capture_ns"]) / 1e9,
        )
        parts.append("<h2>Activations</h2>")
        parts.append(
            table(
                shown,
                [
                    "activation_id",
                    "onset_capture_ns",
                    "duration_s",
                    "bytes_up",
                    "bursts",
                    "confidence",
                    "endpoint_ids",
                    "utterance_seq",
                ],
            )
        )
    endpoints = tables["endpoints"]
    if len(endpoints):
        parts.append("<h2>Endpoints</h2>")
        ordered = endpoints.sort_values("bytes_up", ascending=False, kind="stable")
        parts.append(
            table(
                ordered,
                [
                    "endpoint_id",
                    "organization",
                    "party",
                    "category",
                    "ad_or_tracking",
                    "flows",
                    "bytes_up",
                    "bytes_down",
                    "first_capture_ns",
                ],
                _flags(ordered),
            )
        )
    if ads is not None:
        parts.append(ads_section_html(ads))
    return page(f"harness report {summary.run_id}", "\n".join(parts))


__all__ = ["flagged_endpoints", "ranked_attributions", "report_html"]
