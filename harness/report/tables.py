"""HTML tables for people: human headers with units, readable UTC times and numbers.

Every cell is escaped text, except :class:`Markup` that this package builds itself (an audio
player). A number or an instant also carries its raw value in ``data-v``, so the page's script
sorts by value while the reader sees a formatted one.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd


class Markup(str):
    """HTML this package built from escaped parts; put into a cell as it is."""


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def esc(value: Any) -> str:
    return html.escape("" if missing(value) else str(value), quote=True)


def utc(ns: Any) -> str:
    """An integer UTC epoch-ns instant as ``2024-05-01 12:00:00.123``."""
    if missing(ns):
        return ""
    return datetime.fromtimestamp(int(ns) / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# column -> (header, format); formats: text, word (a term like third_party, shown as words), time,
# s, id, int, bytes, num (3 significant digits), p, rate, bool, list
COLUMNS: dict[str, tuple[str, str]] = {
    "plan_index": ("Plan #", "id"),
    "persona_id": ("Persona", "text"),
    "skill_id": ("Skill id", "text"),
    "skill_name": ("Skill", "text"),
    "utterance_id": ("Utterance id", "text"),
    "kind": ("Kind", "text"),
    "turn": ("Turn", "id"),
    "attempt": ("Try", "id"),
    "text": ("Utterance", "text"),
    "onset_ns": ("Onset (UTC)", "time"),
    "answer_duration_s": ("Answer (s)", "s"),
    "activation_id": ("Activation #", "id"),
    "activation_lag_s": ("Lag (s)", "s"),
    "activation_bytes_up": ("Bytes up", "bytes"),
    "endpoints": ("Attributed endpoints (score)", "list"),
    "transcript": ("Transcript", "text"),
    "audio": ("Answer audio", "text"),
    "endpoint_id": ("Endpoint", "text"),
    "registrable_domain": ("Domain", "text"),
    "organization": ("Organization", "text"),
    "party": ("Party", "word"),
    "category": ("Category", "text"),
    "ad_or_tracking": ("Ad/tracking", "bool"),
    "contacts": ("Contacts", "int"),
    "attributed_to": ("Attributed to skills", "list"),
    "contacted": ("Contacted / tries", "text"),
    "background_rate": ("Background rate", "rate"),
    "caused_rate": ("Caused share", "rate"),
    "other_skills_rate": ("Other skills' rate", "rate"),
    "p_value": ("p", "p"),
    "p_adjusted": ("p adjusted (BH)", "p"),
    "attributed": ("Attributed", "bool"),
    "onset_capture_ns": ("Onset (UTC, capture clock)", "time"),
    "first_capture_ns": ("First seen (UTC, capture clock)", "time"),
    "duration_s": ("Duration (s)", "s"),
    "bytes_up": ("Bytes up", "bytes"),
    "bytes_down": ("Bytes down", "bytes"),
    "flows": ("Flows", "int"),
    "bursts": ("Bursts", "int"),
    "confidence": ("Confidence", "rate"),
    "endpoint_ids": ("Endpoints", "list"),
    "utterance_seq": ("Utterance seq", "id"),
}


TEXT_FORMATS = ("text", "word", "list", "bool")  # sorted by their text; the others by data-v


def _text(fmt: str, value: Any) -> str:
    if fmt == "time":
        return utc(value)
    if fmt == "s":
        return f"{value:.2f}"
    if fmt in ("int", "bytes"):
        return f"{int(value):,}"
    if fmt == "num":
        return f"{value:,.3g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if fmt == "p":
        return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"
    if fmt == "rate":
        return f"{value * 100:.0f} %"
    return str(value)


def cell(fmt: str, value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Markup):
        return f"<td>{value}</td>"
    if isinstance(value, (list, tuple, np.ndarray)):
        return f"<td>{'<br>'.join(esc(v) for v in list(value))}</td>"
    if missing(value) or (fmt == "bool" and not value):
        return "<td></td>" if fmt in TEXT_FORMATS else '<td data-v=""></td>'
    if fmt == "bool":
        return "<td>yes</td>"
    if fmt == "word":
        return f"<td>{esc(str(value).replace('_', ' '))}</td>"
    if fmt in ("text", "list"):
        return f"<td>{esc(value)}</td>"
    kind = "t" if fmt == "time" else "n"
    return f'<td class="{kind}" data-v="{esc(value)}">{esc(_text(fmt, value))}</td>'


def table(
    frame: pd.DataFrame,
    columns: Sequence[str],
    flag: Iterable[bool] | None = None,
    label: str = "",
    headers: dict[str, tuple[str, str]] | None = None,
) -> str:
    """A sortable, filterable table of ``columns`` in a box that scrolls sideways on a narrow
    screen; rows where ``flag`` is true are highlighted. ``headers`` gives (header, format) of
    columns that :data:`COLUMNS` does not name, or names otherwise."""
    if frame.empty:
        return "<p>(none)</p>"
    named = {**COLUMNS, **(headers or {})}
    specs = [named.get(c, (c, "text")) for c in columns]
    flags = list(flag) if flag is not None else [False] * len(frame)
    head = "".join(f'<th scope="col" data-f="{fmt}">{esc(name)}</th>' for name, fmt in specs)
    body = []
    for marked, record in zip(flags, frame[list(columns)].itertuples(index=False), strict=False):
        cells = "".join(cell(fmt, v) for (_, fmt), v in zip(specs, record, strict=True))
        body.append(f'<tr class="flag">{cells}</tr>' if marked else f"<tr>{cells}</tr>")
    caption = f"<caption>{esc(label)}</caption>" if label else ""
    return (
        f'<div class="box"><table class="data">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
