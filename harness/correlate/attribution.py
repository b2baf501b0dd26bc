"""Which endpoints each utterance made the device contact, scored against background traffic.

A *contact* is an episode of upstream packets to one endpoint (packets closer than
``episode_gap_s`` are one episode; for voice endpoints the episodes are the activations, since
their keep-alives are not requests). An utterance's *window* runs from its onset (less a small
lead for clock jitter) to the next utterance's onset, at most ``max_window_s``. *Background* is
the capture time outside every window.

For an endpoint and a window length L, the background probability is the share of all
positions of an L-long window inside the background that contain one of the endpoint's
contacts (exact for periodic traffic: a 10 s heartbeat is in every 10 s window), with half a
window of prior so an endpoint never seen in the background is not certain. A contact in an
utterance's window scores ``1 - that probability``. Per skill, a one-sided binomial test asks
whether the skill's windows hold contacts more often than their background probabilities allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest, false_discovery_control

from harness.correlate.activations import Activation
from harness.correlate.capture import DevicePackets

EPISODE_COLUMNS = ["endpoint", "onset_ns", "end_ns", "bytes_up", "packets"]


@dataclass(frozen=True)
class AttributionSettings:
    max_window_s: float = 30.0
    lead_s: float = 0.25
    episode_gap_s: float = 1.0
    min_score: float = 0.8
    alpha: float = 0.05


def contact_episodes(
    packets: DevicePackets, voice: Sequence[str], activations: Sequence[Activation], gap_s: float
) -> pd.DataFrame:
    """Upstream episodes per endpoint (columns :data:`EPISODE_COLUMNS`), in time order."""
    up = packets.up & ~np.isin(packets.endpoint, list(voice))
    table = pd.DataFrame({"endpoint": packets.endpoint[up], "ts_ns": packets.ts_ns[up], "length": packets.length[up]})
    rows = []
    if len(table):
        table = table.sort_values(["endpoint", "ts_ns"], kind="stable")
        new = (table["endpoint"] != table["endpoint"].shift()) | (table["ts_ns"].diff() > gap_s * 1e9)
        grouped = table.groupby(new.cumsum())
        rows.append(
            pd.DataFrame(
                {
                    "endpoint": grouped["endpoint"].first(),
                    "onset_ns": grouped["ts_ns"].min(),
                    "end_ns": grouped["ts_ns"].max(),
                    "bytes_up": grouped["length"].sum(),
                    "packets": grouped.size(),
                }
            )
        )
    for a in activations:
        rows.extend(pd.DataFrame([[e, a.onset_ns, a.end_ns, a.bytes_up, 0]], columns=EPISODE_COLUMNS) for e in a.endpoints)
    if not rows:
        return pd.DataFrame(columns=EPISODE_COLUMNS)
    out = pd.concat(rows, ignore_index=True)[EPISODE_COLUMNS]
    return out.sort_values("onset_ns", kind="stable").reset_index(drop=True)


def windows(onsets_ns: Sequence[int], settings: AttributionSettings) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each utterance's window, in the order of ``onsets_ns``."""
    onsets = np.asarray(onsets_ns, np.int64)
    lead = int(settings.lead_s * 1e9)
    order = np.argsort(onsets, kind="stable")
    ends = np.empty(len(onsets), np.int64)
    nxt = np.append(onsets[order][1:] - lead, np.iinfo(np.int64).max)
    ends[order] = np.minimum(nxt, onsets[order] + int(settings.max_window_s * 1e9))
    return onsets - lead, np.maximum(ends, onsets - lead)


def background_intervals(span: tuple[int, int], starts: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
    """The parts of ``span`` outside every window."""
    free, cursor = [], span[0]
    for s, e in sorted(zip(starts.tolist(), ends.tolist())):
        if s > cursor:
            free.append((cursor, min(s, span[1])))
        cursor = max(cursor, e)
    if cursor < span[1]:
        free.append((cursor, span[1]))
    return [(s, e) for s, e in free if e > s]


def background_probability(times_ns: np.ndarray, intervals: Sequence[tuple[int, int]], length_ns: int) -> float:
    """Share of L-long windows placed anywhere inside the background that hold a contact,
    with half a window of prior (0.5 with no background at all)."""
    total = covered = 0.0
    for s, e in intervals:
        room = e - length_ns - s
        if room <= 0:
            continue
        total += room
        inside = times_ns[(times_ns >= s) & (times_ns < e)]
        # window start t holds contact c when c - L < t <= c; clip to the allowed starts [s, e - L]
        lo = np.clip(inside - length_ns, s, e - length_ns)
        hi = np.clip(inside, s, e - length_ns)
        cursor = s
        for a, b in zip(lo.tolist(), hi.tolist()):
            a = max(a, cursor)
            if b > a:
                covered += b - a
                cursor = b
    return (covered + 0.5 * length_ns) / (total + length_ns)


@dataclass
class Attribution:
    """``contacts``: one row per (utterance, endpoint contacted in its window);
    ``skills``: one row per (skill, endpoint) with the test; ``background_s``: background time."""

    contacts: pd.DataFrame
    skills: pd.DataFrame
    background_s: float
    background: list[tuple[int, int]]


def attribute(
    onsets_ns: Sequence[int],
    skills: Sequence[str],
    episodes: pd.DataFrame,
    span: tuple[int, int],
    settings: AttributionSettings = AttributionSettings(),
) -> Attribution:
    """Attribute contacts to utterances (``onsets_ns`` on the capture clock, ``skills`` the skill of each)."""
    starts, ends = windows(onsets_ns, settings)
    free = background_intervals(span, starts, ends)
    by_endpoint = {name: group["onset_ns"].to_numpy(np.int64) for name, group in episodes.groupby("endpoint", sort=True)}
    rows = []
    prob_cache: dict[tuple[str, int], float] = {}

    def p_bg(endpoint: str, length: int) -> float:
        key = (endpoint, length // 10_000_000)  # 10 ms resolution is plenty for a probability
        if key not in prob_cache:
            prob_cache[key] = background_probability(by_endpoint[endpoint], free, length)
        return prob_cache[key]

    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        for endpoint, times in by_endpoint.items():
            hit = times[(times >= s) & (times < e)]
            probability = p_bg(endpoint, e - s)
            rows.append((i, endpoint, int(hit[0]) if len(hit) else None, len(hit), probability))
    table = pd.DataFrame(rows, columns=["utterance", "endpoint", "first_contact_ns", "contacts", "background_p"])
    table["skill"] = [skills[i] for i in table["utterance"]] if len(table) else []
    table["contacted"] = table["contacts"] > 0
    table["score"] = np.where(table["contacted"], 1.0 - table["background_p"], 0.0)
    table["attributed"] = table["score"] >= settings.min_score
    table["delay_s"] = (table["first_contact_ns"] - np.asarray(onsets_ns, np.int64)[table["utterance"].to_numpy(int)]) / 1e9
    per_skill = _skill_tests(table, settings)
    contacts = table[table["contacted"]].drop(columns=["contacted"]).reset_index(drop=True)
    return Attribution(contacts, per_skill, sum(e - s for s, e in free) / 1e9, free)


def _skill_tests(table: pd.DataFrame, settings: AttributionSettings) -> pd.DataFrame:
    columns = ["skill", "endpoint", "utterances", "contacted", "contact_rate", "background_rate", "other_skills_rate", "p_value"]
    if table.empty:
        return pd.DataFrame(columns=[*columns, "p_adjusted", "attributed"])
    rows = []
    for (skill, endpoint), group in table.groupby(["skill", "endpoint"], sort=True):
        n, k = len(group), int(group["contacted"].sum())
        if k == 0:
            continue
        background = float(group["background_p"].mean())
        others = table[(table["endpoint"] == endpoint) & (table["skill"] != skill)]
        other_rate = float(others["contacted"].mean()) if len(others) else None
        p = binomtest(k, n, min(background, 1.0), alternative="greater").pvalue
        rows.append((skill, endpoint, n, k, k / n, background, other_rate, float(p)))
    out = pd.DataFrame(rows, columns=columns)
    out["p_adjusted"] = false_discovery_control(out["p_value"].to_numpy()) if len(out) else []
    out["attributed"] = out["p_adjusted"] < settings.alpha
    return out.sort_values(["skill", "p_value", "endpoint"], kind="stable").reset_index(drop=True)
