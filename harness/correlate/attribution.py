"""Which endpoints each utterance made the device contact, scored against background traffic.

A *contact* is an upstream packet to an endpoint (in 100 ms slots; for voice endpoints only the
activation onsets count, since their keep-alives are not requests). *Episodes* (packets closer
than ``episode_gap_s``) summarise contacts for the report. An utterance's *window* runs from its
onset (less a small lead for clock jitter) to the next utterance's onset, at most
``max_window_s``. *Background* is the capture time outside every window.

For an endpoint and a window length L, the background probability is the share of all
positions of an L-long window inside the background that contain one of the endpoint's
contacts (exact for periodic traffic: a 10 s heartbeat is in every 10 s window), with half a
window of prior so an endpoint never seen in the background is not certain. Contacts an utterance
causes come at similar delays after each onset, so each endpoint gets a *response window* of
delays where its contacts pile up beyond the background rate; scores and tests use it (see
:func:`attribute`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest, false_discovery_control, poisson

from harness.correlate.activations import Activation
from harness.correlate.capture import DevicePackets

EPISODE_COLUMNS = ["endpoint", "flow", "onset_ns", "end_ns", "bytes_up", "packets"]


@dataclass(frozen=True)
class AttributionSettings:
    max_window_s: float = 30.0
    lead_s: float = 0.25
    episode_gap_s: float = 1.0
    contact_slot_s: float = 0.1
    min_score: float = 0.8
    alpha: float = 0.05
    response_width_s: float = 2.0
    response_step_s: float = 0.5
    response_p: float = 0.05


def contact_episodes(
    packets: DevicePackets, voice: Sequence[str], activations: Sequence[Activation], gap_s: float
) -> pd.DataFrame:
    """Upstream episodes per endpoint and flow (columns :data:`EPISODE_COLUMNS`; ``flow`` is the
    packets' flow row), in time order; a voice endpoint's episodes are its activations."""
    up = packets.up & ~np.isin(packets.endpoint, list(voice))
    table = pd.DataFrame({"endpoint": packets.endpoint[up], "flow": packets.flow[up], "ts_ns": packets.ts_ns[up],
                          "length": packets.length[up]})  # fmt: skip
    rows = []
    if len(table):
        table = table.sort_values(["endpoint", "flow", "ts_ns"], kind="stable")
        new = ((table["endpoint"] != table["endpoint"].shift()) | (table["flow"] != table["flow"].shift())
               | (table["ts_ns"].diff() > gap_s * 1e9))  # fmt: skip
        grouped = table.groupby(new.cumsum())
        rows.append(
            pd.DataFrame(
                {
                    "endpoint": grouped["endpoint"].first(),
                    "flow": grouped["flow"].first(),
                    "onset_ns": grouped["ts_ns"].min(),
                    "end_ns": grouped["ts_ns"].max(),
                    "bytes_up": grouped["length"].sum(),
                    "packets": grouped.size(),
                }
            )
        )
    voice_rows = [(e, _flow_at(packets, e, a.onset_ns), a.onset_ns, a.end_ns, a.bytes_up, 0)
                  for a in activations for e in a.endpoints]  # fmt: skip
    if voice_rows:
        rows.append(pd.DataFrame(voice_rows, columns=EPISODE_COLUMNS))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "endpoint" else np.int64) for c in EPISODE_COLUMNS})
    out = pd.concat(rows, ignore_index=True)[EPISODE_COLUMNS]
    return out.sort_values("onset_ns", kind="stable").reset_index(drop=True)


def _flow_at(packets: DevicePackets, endpoint: str, onset_ns: int) -> int:
    """The flow of ``endpoint``'s first upstream packet at or after ``onset_ns`` (else its last before)."""
    mine = np.flatnonzero((packets.endpoint == endpoint) & packets.up)
    at = int(np.searchsorted(packets.ts_ns[mine], onset_ns))
    return int(packets.flow[mine[min(at, len(mine) - 1)]])


def contact_times(packets: DevicePackets, voice: Sequence[str], activations: Sequence[Activation], resolution_s: float) -> pd.DataFrame:
    """Instants at which each endpoint was contacted (columns ``endpoint``, ``ts_ns``): every
    ``resolution_s`` slot holding an upstream packet (so a steady stream is contacted in every
    window), and for voice endpoints the activation onsets only."""
    up = packets.up & ~np.isin(packets.endpoint, list(voice))
    slot = int(resolution_s * 1e9)
    table = pd.DataFrame({"endpoint": packets.endpoint[up], "ts_ns": packets.ts_ns[up] // slot * slot})
    starts = pd.DataFrame([(e, a.onset_ns) for a in activations for e in a.endpoints], columns=["endpoint", "ts_ns"])
    both = pd.concat([table.drop_duplicates(), starts], ignore_index=True) if len(starts) else table.drop_duplicates()
    return both.astype({"ts_ns": np.int64}).sort_values("ts_ns", kind="stable").reset_index(drop=True)


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


def background_probability(
    times_ns: np.ndarray, intervals: Sequence[tuple[int, int]], length_ns: int, rate_per_s: float | None = None
) -> float:
    """Share of L-long windows placed anywhere inside the background that hold a contact, with
    half a window of prior. When no window fits in the background, ``1 - exp(-rate * L)`` from
    ``rate_per_s`` (contacts per second), else 0.5."""
    total = covered = 0.0
    for s, e in intervals:
        room = e - length_ns - s
        if room <= 0:
            continue
        total += room
        inside = np.sort(times_ns[(times_ns >= s) & (times_ns < e)])
        # window start t holds contact c when c - L < t <= c; clip to the allowed starts [s, e - L]
        lo = np.clip(inside - length_ns, s, e - length_ns)
        hi = np.clip(inside, s, e - length_ns)
        previous = np.concatenate([[s], hi[:-1]])  # hi is sorted, so this is the union so far
        covered += float(np.maximum(hi - np.maximum(lo, previous), 0).sum())
    if total == 0 and rate_per_s is not None:
        return float(-np.expm1(-rate_per_s * length_ns / 1e9))
    return (covered + 0.5 * length_ns) / (total + length_ns)


@dataclass
class Attribution:
    """``contacts``: one row per (utterance, endpoint contacted in its response window);
    ``skills``: one row per (skill, endpoint) with the test; ``background_s``: background time."""

    contacts: pd.DataFrame
    skills: pd.DataFrame
    background_s: float
    background: list[tuple[int, int]]


def response_window(
    delays_s: np.ndarray, lengths_s: np.ndarray, rate_per_s: float, settings: AttributionSettings
) -> tuple[float, float]:
    """Delays after the onset (from, to) at which an endpoint answers utterances: the span of
    ``response_width_s``-wide delay windows (stepped by ``response_step_s``) holding significantly
    more contact episodes than the background rate explains (Poisson, Bonferroni over the
    window's length in widths), widened by a step each side; the whole utterance window when
    there is none."""
    whole = (-settings.lead_s, float(lengths_s.max()) - settings.lead_s if len(lengths_s) else settings.max_window_s)
    if not len(delays_s) or not np.isfinite(rate_per_s):
        return whole
    width, step = settings.response_width_s, settings.response_step_s
    starts = np.arange(whole[0], max(whole[0] + step, whole[1] - width + step), step)
    delays = np.sort(delays_s)
    observed = np.searchsorted(delays, starts + width) - np.searchsorted(delays, starts)
    covering = (lengths_s[None, :] - settings.lead_s >= np.minimum(starts + width, whole[1])[:, None]).sum(axis=1)
    expected = np.maximum(rate_per_s * width * covering, 1e-12)
    tests = max(1.0, (whole[1] - whole[0]) / width)  # overlapping positions are not independent tests
    significant = np.flatnonzero((observed >= 2) & (poisson.sf(observed - 1, expected) < settings.response_p / tests))
    if not len(significant):
        return whole
    return max(whole[0], float(starts[significant[0]] - step)), min(whole[1], float(starts[significant[-1]] + width + step))


def attribute(
    onsets_ns: Sequence[int],
    skills: Sequence[str],
    contacts: pd.DataFrame,
    span: tuple[int, int],
    settings: AttributionSettings | None = None,
) -> Attribution:
    """Attribute contacts (from :func:`contact_times`) to utterances (``onsets_ns`` on the capture
    clock, ``skills`` the skill of each).

    Per endpoint, the response window (:func:`response_window`); per skill and endpoint, the share ``r`` of the
    skill's utterances contacted in it and the background probability ``b`` of a contact in a
    window that long give the share caused by the skill, ``q = 1 - (1 - r) / (1 - b)``, and each
    contacted utterance scores ``q / r`` (the chance its contact is not background). A contact is
    attributed when its score reaches ``min_score`` and the skill's binomial test (``r`` against
    ``b``, Benjamini-Hochberg adjusted) is below ``alpha``.
    """
    settings = settings or AttributionSettings()
    onsets = np.asarray(onsets_ns, np.int64)
    starts, ends = windows(onsets, settings)
    free = background_intervals(span, starts, ends)
    background_s = sum(e - s for s, e in free) / 1e9
    by_endpoint = {name: np.sort(group["ts_ns"].to_numpy(np.int64)) for name, group in contacts.groupby("endpoint", sort=True)}
    skill_of = np.asarray(skills, dtype=object)
    span_s = max((span[1] - span[0]) / 1e9, 1.0)
    rows, tests = [], []
    for endpoint, times in by_endpoint.items():
        # episode starts, not packets: one connection is one event for the rate and the delays
        episodes = times[np.concatenate([[True], np.diff(times) > settings.episode_gap_s * 1e9])] if len(times) else times
        quiet = sum(int(np.searchsorted(episodes, e) - np.searchsorted(episodes, s)) for s, e in free)
        # with little quiet time, the rate over the whole capture (caused contacts included) is the cautious null
        rate = (quiet + 0.5) / background_s if background_s >= settings.max_window_s else (len(episodes) + 0.5) / span_s
        pooled = response_window(_delays(episodes, onsets, starts, ends), (ends - onsets) / 1e9, rate, settings)
        for skill in sorted(set(skill_of.tolist())):
            mine = np.flatnonzero(skill_of == skill)
            if not (np.searchsorted(times, ends[mine]) > np.searchsorted(times, starts[mine])).any():
                continue
            # a skill's own endpoints answer its utterances only; a shared one (metrics after every
            # request) stands out only when all utterances are pooled
            own = response_window(_delays(episodes, onsets[mine], starts[mine], ends[mine]), (ends[mine] - onsets[mine]) / 1e9, rate, settings)
            whole = own == (-settings.lead_s, float((ends[mine] - onsets[mine]).max()) / 1e9 - settings.lead_s)
            frm, to = pooled if whole else own
            sub_s = np.maximum(onsets + int(frm * 1e9), starts)
            sub_e = np.minimum(onsets + int(to * 1e9), ends)
            # outside the response window, an utterance's window is background for this endpoint too
            off = free + [(x, y) for x, y in zip(starts, sub_s) if y > x] + [(x, y) for x, y in zip(sub_e, ends) if y > x]
            first = [times[a] if (a := int(np.searchsorted(times, x))) < len(times) and times[a] < y else None for x, y in zip(sub_s[mine], sub_e[mine])]
            cache: dict[int, float] = {}  # windows mostly share a length: 10 ms resolution is plenty
            for length in {max(int(y - x), 1) // 10_000_000 for x, y in zip(sub_s[mine], sub_e[mine])}:
                cache[length] = background_probability(times, off, max(length * 10_000_000, 1), rate)
            probabilities = np.array([cache[max(int(y - x), 1) // 10_000_000] for x, y in zip(sub_s[mine], sub_e[mine])])
            hit = np.array([f is not None for f in first])
            r, b = hit.mean(), float(probabilities.mean())
            q = max(0.0, 1.0 - (1.0 - r) / (1.0 - b)) if b < 1 else 0.0
            p = binomtest(int(hit.sum()), len(mine), min(b, 1.0), alternative="greater").pvalue if hit.any() else 1.0
            others = np.flatnonzero(skill_of != skill)
            other_rate = float(np.mean([np.searchsorted(times, ends[j]) > np.searchsorted(times, starts[j]) for j in others])) if len(others) else None
            tests.append((skill, endpoint, len(mine), int(hit.sum()), r, b, q, frm, to, other_rate, float(p)))
            for i, f, prob in zip(mine, first, probabilities):
                if f is not None:
                    rows.append((int(i), endpoint, skill, int(f), (int(f) - int(onsets[i])) / 1e9, float(prob), q / r))
    per_skill = pd.DataFrame(tests, columns=SKILL_COLUMNS)
    per_skill = per_skill[per_skill["contacted"] > 0].reset_index(drop=True)
    per_skill["p_adjusted"] = false_discovery_control(per_skill["p_value"].to_numpy()) if len(per_skill) else []
    per_skill["attributed"] = (per_skill["p_adjusted"] < settings.alpha) & (per_skill["caused_rate"] / per_skill["contact_rate"] >= settings.min_score)
    per_skill = per_skill.sort_values(["skill", "p_value", "endpoint"], kind="stable").reset_index(drop=True)
    table = pd.DataFrame(rows, columns=["utterance", "endpoint", "skill", "first_contact_ns", "delay_s", "background_p", "score"])
    passed = per_skill[per_skill["p_adjusted"] < settings.alpha]
    significant = set(zip(passed["skill"], passed["endpoint"]))
    tested = np.array([(k, e) in significant for k, e in zip(table["skill"], table["endpoint"])], bool)
    table["attributed"] = (table["score"] >= settings.min_score).to_numpy() & tested
    return Attribution(table.sort_values(["utterance", "first_contact_ns"]).reset_index(drop=True), per_skill, background_s, free)


def _delays(episodes: np.ndarray, onsets: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Delays (s) of the episodes inside each window after that window's onset."""
    lo, hi = np.searchsorted(episodes, starts), np.searchsorted(episodes, ends)
    parts = [(episodes[a:b] - o) / 1e9 for o, a, b in zip(onsets, lo, hi)]
    return np.concatenate(parts) if parts else np.array([])


SKILL_COLUMNS = [
    "skill", "endpoint", "utterances", "contacted", "contact_rate", "background_rate", "caused_rate",
    "response_from_s", "response_to_s", "other_skills_rate", "p_value",
]  # fmt: skip
