"""The analysis tables: one definition of every table (its columns, their dtypes and meaning).

Kept apart from the run-directory files and ``summary.json`` models (:mod:`harness.rundir.analysis`)
so that commands which only shape a table (``harness net``) load neither pydantic nor the files'
code. The rules:

- every instant is an integer ``*_ns`` column, UTC epoch nanoseconds (``*_capture_ns`` on the
  capture's clock, the others on the bench's); durations are ``*_s`` floats;
- every table is keyed by stable ids, never row numbers: ``run_id``; ``utterance_seq`` (the
  ``seq`` of the spoken try's ``utterance_started`` event, unique in a run, also across resumes)
  with ``plan_index``, ``turn`` and ``attempt``; ``activation_id``; ``endpoint_id`` (the
  endpoint's name, else its address);
- text is pandas' ``str`` dtype (empty, never missing); a missing value is ``<NA>`` in a nullable
  integer column (pandas ``Int64``), NaN in a float one;
- list columns (``endpoint_ids``, ``addresses``, ...) are lists in Parquet and ``;``-joined in CSV.

``pd.read_parquet`` gives these dtypes back as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["str", "int", "int?", "float", "bool", "list"]
_DTYPES: dict[str, str] = {
    "str": "str",
    "int": "int64",
    "int?": "Int64",
    "float": "float64",
    "bool": "bool",
    "list": "object",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    doc: str


def _c(name: str, kind: Kind, doc: str) -> Column:
    return Column(name, kind, doc)


_CLASS = [
    _c("registrable_domain", "str", "the name's registrable domain (public suffix list); empty for an address"),
    _c("organization", "str", "who operates it, from the name or the address owner; empty when unknown"),
    _c("party", "str", "first_party, platform, skill_vendor, third_party or unknown"),
    _c("category", "str", "voice, platform, advertising, tracking, content or other"),
    _c("ad_or_tracking", "bool", "on an advertising or tracking list"),
]

TABLES: dict[str, list[Column]] = {
    "utterances": [
        _c("run_id", "str", "the run"),
        _c(
            "utterance_seq", "int", "seq of the try's utterance_started (or stop_spoken) event: the key of a spoken try"
        ),
        _c("kind", "str", "request: a try of the plan; stop: the bench's stop phrase (the device hears it too)"),
        _c("plan_index", "int", "0-based plan item"),
        _c("turn", "int", "0 the utterance, k its k-th follow-up"),
        _c("attempt", "int", "1-based try"),
        _c("persona_id", "str", "persona"),
        _c("skill_id", "str", 'skill ("builtin" for built-in requests)'),
        _c("skill_name", "str", "skill name"),
        _c("utterance_id", "str", 'the persona\'s utterance id, e.g. "fitbit/2"'),
        _c("text", "str", "what was spoken"),
        _c("onset_ns", "int", "first sample at the speaker (bench clock)"),
        _c("end_ns", "int", "last sample at the speaker (bench clock)"),
        _c("onset_capture_ns", "int", "onset on the capture clock"),
        _c("answer_onset_ns", "int?", "when the answer started (bench clock)"),
        _c("answer_duration_s", "float", "how long the answer lasted"),
        _c("superseded", "bool", "a resume spoke this try's plan item again: a later try replaces it"),
        _c("final", "bool", "the try that counts for its turn: the last one not superseded"),
        _c("transcript", "str", "the answer as the offline recogniser heard it (empty: no answer or not transcribed)"),
        _c(
            "expect_result",
            "str",
            "matched, not_matched (the answer against the utterance's expect), no_answer, "
            "unchecked (no expect: follow-ups and stop phrases; or not transcribed)",
        ),
        _c("matched_by", "str", 'what matched: "keyword:WORDS" or "regex:PATTERN"; empty otherwise'),
        _c("activation_id", "int?", "the activation this try caused"),
        _c("activation_lag_s", "float", "activation onset minus utterance onset (capture clock)"),
        _c("activation_bytes_up", "int?", "bytes the activation uploaded"),
        _c("endpoint_ids", "list", "endpoints attributed to this try, best score first"),
        _c("scores", "list", "their attribution scores"),
    ],
    "activations": [
        _c("run_id", "str", "the run"),
        _c("activation_id", "int", "0, 1, ... in onset order"),
        _c("onset_capture_ns", "int", "first upstream packet of the request (capture clock)"),
        _c("end_capture_ns", "int", "last upstream packet of the request (capture clock)"),
        _c("bytes_up", "int", "upstream bytes to the voice endpoints"),
        _c("bursts", "int", "upstream bursts merged into it"),
        _c("confidence", "float", "0-1: the weakest of its signs (opening burst, speech stream, size)"),
        _c("endpoint_ids", "list", "the voice endpoints it went to"),
        _c("utterance_seq", "int?", "the spoken try it belongs to (utterances.utterance_seq)"),
    ],
    "endpoints": [
        _c("run_id", "str", "the run"),
        _c("endpoint_id", "str", "the endpoint's name, else its address"),
        _c("named", "bool", "named by the capture (DNS, SNI, HTTP, QUIC, certificate), not only an address"),
        _c("name_sources", "list", "how it was named"),
        _c("addresses", "list", "its remote addresses"),
        _c("owner", "str", "who the endpoint belongs to; empty when nothing tells"),
        _c("owner_source", "str", "how the owner was found: the naming evidence (dns, sni, ...) or the address owner"),
        _c("network", "str", "the network (autonomous system) its busiest address belongs to"),
        *_CLASS,
        _c("lists", "list", "the filter lists that flag it"),
        _c("flows", "int", "flows of the device to it"),
        _c("bytes_up", "int", "bytes the device sent it"),
        _c("bytes_down", "int", "bytes it sent the device"),
        _c("first_capture_ns", "int", "first packet (capture clock)"),
        _c("last_capture_ns", "int", "last packet (capture clock)"),
    ],
    "attributions": [
        _c("run_id", "str", "the run"),
        _c("skill_id", "str", "skill"),
        _c("skill_name", "str", "skill name"),
        _c("endpoint_id", "str", "endpoint (endpoints.endpoint_id)"),
        _c("utterances", "int", "tries of the skill"),
        _c("contacted", "int", "tries whose response window holds a contact of the endpoint"),
        _c("contact_rate", "float", "contacted / utterances"),
        _c("background_rate", "float", "chance of a contact in a window of background traffic"),
        _c("caused_rate", "float", "share of contacts beyond the background"),
        _c("response_from_s", "float", "start of the endpoint's response window after an onset"),
        _c("response_to_s", "float", "end of the response window"),
        _c("other_skills_rate", "float", "contact rate after the other skills' utterances"),
        _c("p_value", "float", "binomial test against the background rate"),
        _c("p_adjusted", "float", "Benjamini-Hochberg over the run"),
        _c("attributed", "bool", "the skill's utterances make the device contact the endpoint"),
    ],
    "contacts": [
        _c("run_id", "str", "the run"),
        _c("endpoint_id", "str", "endpoint (endpoints.endpoint_id)"),
        _c("onset_capture_ns", "int", "first upstream packet of the episode (capture clock)"),
        _c("end_capture_ns", "int", "last upstream packet of the episode (capture clock)"),
        _c("bytes_up", "int", "upstream bytes"),
        _c("packets", "int", "upstream packets (0 for an activation of a voice endpoint)"),
        _c("protocol", "str", "tcp, udp, ..."),
        _c("remote_ip", "str", "the endpoint's address"),
        _c("remote_port", "int", "the endpoint's port"),
        _c("local_port", "int", "the device's port"),
        _c("category", "str", "voice, platform, advertising, tracking, content or other"),
        _c("ad_or_tracking", "bool", "on an advertising or tracking list"),
    ],
}
TABLE_NAMES = tuple(TABLES)


def columns(name: str) -> list[str]:
    return [c.name for c in TABLES[name]]


def empty_table(name: str) -> pd.DataFrame:
    import pandas as pd

    return conform(name, pd.DataFrame({c: [] for c in columns(name)}))


def conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly the table's columns, in order, with their dtypes (raises on a missing column)."""
    return conform_columns(TABLES[name], name, frame)


def conform_columns(cols: list[Column], name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`conform` for any list of columns (a table ``name`` defined elsewhere with the same rules)."""
    import pandas as pd

    names = [c.name for c in cols]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"table {name} lacks columns {missing}")
    out = frame[names].reset_index(drop=True).copy()
    for col in cols:
        if col.kind == "list":
            out[col.name] = pd.Series(list(map(_list_cell, out[col.name])), index=out.index, dtype=object)
        elif col.kind == "str":
            out[col.name] = out[col.name].map(_text_cell).astype("str")
        else:
            out[col.name] = out[col.name].astype(_DTYPES[col.kind])
    return out


def conform_records(name: str, rows: Iterable[Mapping[str, Any]], drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rows of table ``name`` as plain values for JSON, by :func:`conform`'s rules, without pandas:
    the table's columns in order (but ``drop``), text never missing, a missing number None."""
    dropped = set(drop)
    cols = [c for c in TABLES[name] if c.name not in dropped]
    out = []
    for row in rows:
        missing = [c.name for c in cols if c.name not in row]
        if missing:
            raise ValueError(f"table {name} lacks columns {missing}")
        out.append({c.name: _CELLS[c.kind](row[c.name]) for c in cols})
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _list_cell(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple, np.ndarray)) else []


def _text_cell(v: Any) -> str:
    return "" if _missing(v) else str(v)


_CELLS = {
    "str": _text_cell,
    "list": _list_cell,
    "int": int,
    "int?": lambda v: None if _missing(v) else int(v),
    "float": lambda v: None if _missing(v) else float(v),
    "bool": bool,
}


def table_schema(name: str) -> dict[str, Any]:
    """A table's columns as JSON (name, dtype, meaning), for ``harness schema`` and the docs."""
    return {
        "table": name,
        "columns": [
            {"name": c.name, "dtype": _DTYPES[c.kind] if c.kind != "list" else "list", "description": c.doc}
            for c in TABLES[name]
        ],
    }
