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

Cost is n log n in contacts and utterances (times endpoints x skills): windows, background and
response windows are sorted arrays joined by binary searches and prefix sums
(:func:`background_probabilities` evaluates every window length at once), never a Python loop over
intervals or utterances.
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
    table = pd.DataFrame(
        {
            "endpoint": packets.endpoint[up],
            "flow": packets.flow[up],
            "ts_ns": packets.ts_ns[up],
            "length": packets.length[up],
        }
    )
    rows = []
    if len(table):
        table = table.sort_values(["endpoint", "flow", "ts_ns"], kind="stable")
        new = (
            (table["endpoint"] != table["endpoint"].shift())
            | (table["flow"] != table["flow"].shift())
            | (table["ts_ns"].diff() > gap_s * 1e9)
        )
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
    voice_rows = _voice_episodes(packets, activations)
    if voice_rows:
        rows.append(pd.DataFrame(voice_rows, columns=EPISODE_COLUMNS))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "endpoint" else np.int64) for c in EPISODE_COLUMNS})
    out = pd.concat(rows, ignore_index=True)[EPISODE_COLUMNS]
    return out.sort_values("onset_ns", kind="stable").reset_index(drop=True)


def _voice_episodes(packets: DevicePackets, activations: Sequence[Activation]) -> list[tuple]:
    """One episode per activation and endpoint, on the flow of the endpoint's first upstream packet at
    or after the onset (else its last before): one binary search per activation."""
    upstream: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # an endpoint's upstream times and flows, found once
    rows = []
    for a in activations:
        for e in a.endpoints:
            if e not in upstream:
                mine = np.flatnonzero((packets.endpoint == e) & packets.up)
                upstream[e] = packets.ts_ns[mine], packets.flow[mine]
            times, flows = upstream[e]
            at = int(np.searchsorted(times, a.onset_ns))
            rows.append((e, int(flows[min(at, len(flows) - 1)]), a.onset_ns, a.end_ns, a.bytes_up, 0))
    return rows


def contact_times(
    packets: DevicePackets, voice: Sequence[str], activations: Sequence[Activation], resolution_s: float
) -> pd.DataFrame:
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
    for s, e in sorted(zip(starts.tolist(), ends.tolist(), strict=False)):
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
    starts = np.array([s for s, _ in intervals], np.int64)
    ends = np.array([e for _, e in intervals], np.int64)
    return float(background_probabilities(times_ns, starts, ends, np.array([length_ns], np.int64), rate_per_s)[0])


def background_probabilities(
    times_ns: np.ndarray,
    starts_ns: np.ndarray,
    ends_ns: np.ndarray,
    lengths_ns: np.ndarray,
    rate_per_s: float | None = None,
) -> np.ndarray:
    """:func:`background_probability` of every window length in ``lengths_ns`` (ns, at least 1) over
    the intervals ``[starts_ns[i], ends_ns[i])``, at a cost of n log n in contacts, intervals and lengths.

    A window of length L starting at t holds contact c when c - L < t <= c. Inside one interval
    [s, e), the starts that hold c but no earlier contact measure max(0, min(L, u, w - L)), with p
    the previous contact in the interval (else s), u = min(c - p, e - c) and w = e - p: a trapezoid
    in L, which is a sum of four ramps max(0, L - x). An interval's room for starts is
    max(0, e - s - L), one more ramp. Sums of ramps over sorted breakpoints are prefix sums, so
    every length is one binary search; all sums are exact integers (as long as they stay below
    2^53 ns, 104 days, the float result is the interval-by-interval one's to the last bit).
    """
    times = np.sort(np.asarray(times_ns, np.int64))
    starts, ends = np.asarray(starts_ns, np.int64), np.asarray(ends_ns, np.int64)
    lengths = np.asarray(lengths_ns, np.int64)
    starts, ends = starts[ends > starts], ends[ends > starts]
    lo = np.searchsorted(times, starts)
    counts = np.searchsorted(times, ends) - lo
    at = _ranges(lo, counts)
    first = np.zeros(len(at), bool)
    first[(np.cumsum(counts) - counts)[counts > 0]] = True
    contact, end = times[at], np.repeat(ends, counts)
    previous = np.where(first, np.repeat(starts, counts), times[np.maximum(at - 1, 0)])
    u, w = np.minimum(contact - previous, end - contact), end - previous
    cap = int(lengths.max()) if len(lengths) else 0
    covered = len(at) * lengths - _ramps(u, lengths, cap) - _ramps(w - u, lengths, cap) + _ramps(w, lengths, cap)
    span = ends - starts
    total = int(span.sum()) - len(span) * lengths + _ramps(span, lengths, cap)
    if rate_per_s is not None and not total.all():
        fallback = np.array([-np.expm1(-rate_per_s * int(length) / 1e9) for length in lengths])
    else:
        fallback = np.zeros(len(lengths))
    share = (covered.astype(np.float64) + 0.5 * lengths) / (total.astype(np.float64) + lengths)
    return np.where((total == 0) & (rate_per_s is not None), fallback, share)


def _ramps(x: np.ndarray, lengths: np.ndarray, cap: int) -> np.ndarray:
    """``sum(max(0, L - x))`` over ``x`` for every L in ``lengths`` (none above ``cap``)."""
    ordered = np.sort(np.minimum(x, cap))  # a breakpoint at or past every length adds nothing: no overflow
    below = np.searchsorted(ordered, lengths)
    return below * lengths - np.r_[0, np.cumsum(ordered)][below]


def _ranges(lo: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices ``lo[i] .. lo[i] + counts[i] - 1`` of every i, concatenated."""
    return np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))


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
    reach = np.sort(lengths_s - settings.lead_s)  # windows reaching past a delay window's end cover it
    covering = len(reach) - np.searchsorted(reach, np.minimum(starts + width, whole[1]))
    expected = np.maximum(rate_per_s * width * covering, 1e-12)
    tests = max(1.0, (whole[1] - whole[0]) / width)  # overlapping positions are not independent tests
    significant = np.flatnonzero((observed >= 2) & (poisson.sf(observed - 1, expected) < settings.response_p / tests))
    if not len(significant):
        return whole
    return max(whole[0], float(starts[significant[0]] - step)), min(
        whole[1], float(starts[significant[-1]] + width + step)
    )


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
    free_s, free_e = np.array([s for s, _ in free], np.int64), np.array([e for _, e in free], np.int64)
    background_s = sum(e - s for s, e in free) / 1e9
    by_endpoint = {
        name: np.sort(group["ts_ns"].to_numpy(np.int64)) for name, group in contacts.groupby("endpoint", sort=True)
    }
    skill_of = np.asarray(skills, dtype=object)
    members = {skill: np.flatnonzero(skill_of == skill) for skill in sorted(set(skill_of.tolist()))}
    span_s = max((span[1] - span[0]) / 1e9, 1.0)
    rows: list[pd.DataFrame] = []
    tests = []
    for endpoint, times in by_endpoint.items():
        # episode starts, not packets: one connection is one event for the rate and the delays
        episodes = (
            times[np.concatenate([[True], np.diff(times) > settings.episode_gap_s * 1e9])] if len(times) else times
        )
        quiet = int((np.searchsorted(episodes, free_e) - np.searchsorted(episodes, free_s)).sum())
        # with little quiet time, the rate over the whole capture (caused contacts included) is the cautious null
        rate = (quiet + 0.5) / background_s if background_s >= settings.max_window_s else (len(episodes) + 0.5) / span_s
        pooled = response_window(_delays(episodes, onsets, starts, ends), (ends - onsets) / 1e9, rate, settings)
        contacted = np.searchsorted(times, ends) > np.searchsorted(times, starts)  # a contact anywhere in the window
        for skill, mine in members.items():
            if not contacted[mine].any():
                continue
            # a skill's own endpoints answer its utterances only; a shared one (metrics after every
            # request) stands out only when all utterances are pooled
            own = response_window(
                _delays(episodes, onsets[mine], starts[mine], ends[mine]),
                (ends[mine] - onsets[mine]) / 1e9,
                rate,
                settings,
            )
            whole = own == (-settings.lead_s, float((ends[mine] - onsets[mine]).max()) / 1e9 - settings.lead_s)
            frm, to = pooled if whole else own
            sub_s = np.maximum(onsets + int(frm * 1e9), starts)
            sub_e = np.minimum(onsets + int(to * 1e9), ends)
            # outside the response window, an utterance's window is background for this endpoint too
            before, after = sub_s > starts, ends > sub_e
            off_s = np.concatenate([free_s, starts[before], sub_e[after]])
            off_e = np.concatenate([free_e, sub_s[before], ends[after]])
            at = np.minimum(np.searchsorted(times, sub_s[mine]), len(times) - 1)
            hit = (times[at] >= sub_s[mine]) & (times[at] < sub_e[mine])  # the first contact at or after the start
            # windows mostly share a length: 10 ms resolution is plenty
            lengths, which = np.unique(np.maximum(sub_e[mine] - sub_s[mine], 1) // 10_000_000, return_inverse=True)
            lengths = np.maximum(lengths * 10_000_000, 1)
            probabilities = background_probabilities(times, off_s, off_e, lengths, rate)[which]
            r, b = hit.mean(), float(probabilities.mean())
            q = max(0.0, 1.0 - (1.0 - r) / (1.0 - b)) if b < 1 else 0.0
            p = binomtest(int(hit.sum()), len(mine), min(b, 1.0), alternative="greater").pvalue if hit.any() else 1.0
            others = skill_of != skill
            other_rate = float(np.mean(contacted[others])) if others.any() else None
            tests.append((skill, endpoint, len(mine), int(hit.sum()), r, b, q, frm, to, other_rate, float(p)))
            if hit.any():
                first = times[at[hit]]
                rows.append(
                    pd.DataFrame(
                        {
                            "utterance": mine[hit],
                            "endpoint": endpoint,
                            "skill": skill,
                            "first_contact_ns": first,
                            "delay_s": (first - onsets[mine[hit]]) / 1e9,
                            "background_p": probabilities[hit],
                            "score": q / r,
                        }
                    )
                )
    per_skill = pd.DataFrame(tests, columns=SKILL_COLUMNS)
    per_skill = per_skill[per_skill["contacted"] > 0].reset_index(drop=True)
    per_skill["p_adjusted"] = false_discovery_control(per_skill["p_value"].to_numpy()) if len(per_skill) else []
    per_skill["attributed"] = (per_skill["p_adjusted"] < settings.alpha) & (
        per_skill["caused_rate"] / per_skill["contact_rate"] >= settings.min_score
    )
    per_skill = per_skill.sort_values(["skill", "p_value", "endpoint"], kind="stable").reset_index(drop=True)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame([], columns=CONTACT_COLUMNS)
    passed = per_skill[per_skill["p_adjusted"] < settings.alpha]
    significant = list(zip(passed["skill"], passed["endpoint"], strict=False))
    tested = pd.MultiIndex.from_arrays([table["skill"], table["endpoint"]]).isin(significant)
    table["attributed"] = (table["score"] >= settings.min_score).to_numpy() & tested
    return Attribution(
        table.sort_values(["utterance", "first_contact_ns"]).reset_index(drop=True), per_skill, background_s, free
    )


def _delays(episodes: np.ndarray, onsets: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Delays (s) of the episodes inside each window after that window's onset, window by window."""
    lo = np.searchsorted(episodes, starts)
    counts = np.searchsorted(episodes, ends) - lo
    return (episodes[_ranges(lo, counts)] - np.repeat(onsets, counts)) / 1e9


CONTACT_COLUMNS = ["utterance", "endpoint", "skill", "first_contact_ns", "delay_s", "background_p", "score"]
SKILL_COLUMNS = [
    "skill",
    "endpoint",
    "utterances",
    "contacted",
    "contact_rate",
    "background_rate",
    "caused_rate",
    "response_from_s",
    "response_to_s",
    "other_skills_rate",
    "p_value",
]
