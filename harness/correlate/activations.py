"""Activations from traffic alone: when the device woke and streamed a request upstream.

The device's upstream bytes to its voice endpoints are binned; a bin is active above a
threshold learned from the capture itself (median + k * MAD of the binned rate, which the
quiet bins dominate, never below a floor). Active bins closer than ``merge_gap_s`` form one
burst; bursts under ``min_bytes`` are dropped. A burst soon after an activation and much smaller
than its first burst is the same request's second phase (the Echo reports back after it has
answered), so it joins that activation: one utterance is one activation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.classify import classify_name
from harness.correlate.capture import CaptureView, DevicePackets

MAD_SCALE = 1.4826  # MAD of a normal distribution times this is its standard deviation
CANDIDATES = 5  # busiest endpoints tried as the voice endpoint when none is named as one


@dataclass(frozen=True)
class DetectorSettings:
    bin_s: float = 0.1
    k: float = 8.0
    floor_bps: float = 3000.0
    merge_gap_s: float = 1.0
    min_bytes: int = 1500
    follow_s: float = 10.0
    follow_fraction: float = 0.5
    min_speech_s: float = 0.8
    lead_s: float = 0.25
    lag_s: float = 0.5


@dataclass(frozen=True)
class Activation:
    onset_ns: int
    end_ns: int
    bytes_up: int
    endpoints: tuple[str, ...]
    bursts: int = 1


@dataclass
class ActivationResult:
    activations: list[Activation]
    threshold_bps: float
    voice_endpoints: list[str]
    voice_source: str = "classified"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Burst:
    onset_ns: int
    end_ns: int
    bytes_up: int
    endpoints: frozenset[str]


def voice_endpoints(view: CaptureView) -> list[str]:
    """Endpoints of the device classified as voice services."""
    names = view.flows.loc[view.flows["name"].notna() & ~view.flows["service"], "endpoint"].unique()
    return sorted(n for n in names if classify_name(n).category == "voice")


def _upstream(packets: DevicePackets, endpoints: list[str]) -> pd.DataFrame:
    keep = packets.up & np.isin(packets.endpoint, endpoints)
    return pd.DataFrame({"ts_ns": packets.ts_ns[keep], "length": packets.length[keep], "endpoint": packets.endpoint[keep]})


def threshold_bps(rate: np.ndarray, settings: DetectorSettings) -> float:
    """Rate above which a bin is active: the quiet level plus k robust deviations, at least the floor."""
    if not len(rate):
        return settings.floor_bps
    median = float(np.median(rate))
    mad = float(np.median(np.abs(rate - median))) * MAD_SCALE
    return max(settings.floor_bps, median + settings.k * mad)


def _bursts(up: pd.DataFrame, start_ns: int, end_ns: int, settings: DetectorSettings) -> tuple[list[_Burst], float]:
    bin_ns = int(settings.bin_s * 1e9)
    n = max(1, (end_ns - start_ns) // bin_ns + 1)
    index = ((up["ts_ns"].to_numpy() - start_ns) // bin_ns).clip(0, n - 1)
    rate = np.bincount(index, weights=up["length"].to_numpy(), minlength=n) / settings.bin_s
    threshold = threshold_bps(rate, settings)
    active = np.flatnonzero(rate > threshold)
    if not len(active):
        return [], threshold
    gap_bins = round(settings.merge_gap_s / settings.bin_s)
    breaks = np.flatnonzero(np.diff(active) > gap_bins + 1)
    runs = np.split(active, breaks + 1)
    bursts = []
    for run in runs:
        lo, hi = start_ns + int(run[0]) * bin_ns, start_ns + (int(run[-1]) + 1) * bin_ns
        inside = up[(up["ts_ns"] >= lo) & (up["ts_ns"] < hi)]
        total = int(inside["length"].sum())
        if total >= settings.min_bytes:
            bursts.append(_Burst(int(inside["ts_ns"].min()), int(inside["ts_ns"].max()), total, frozenset(inside["endpoint"])))
    return bursts, threshold


def _activations(bursts: list[_Burst], settings: DetectorSettings, onsets_ns: np.ndarray | None = None) -> list[Activation]:
    found: list[Activation] = []
    first_bytes = 0
    for burst in bursts:
        last = found[-1] if found else None
        # speech streams for as long as the request lasts; a report is a few records at once
        follow = (
            last is not None
            and burst.onset_ns - last.end_ns <= settings.follow_s * 1e9
            and (burst.bytes_up < settings.follow_fraction * first_bytes or burst.end_ns - burst.onset_ns < settings.min_speech_s * 1e9)
            and not _spoken_between(onsets_ns, last.onset_ns, burst.onset_ns, settings)
        )
        if follow:
            found[-1] = Activation(
                last.onset_ns, burst.end_ns, last.bytes_up + burst.bytes_up,
                tuple(sorted(set(last.endpoints) | burst.endpoints)), last.bursts + 1,
            )  # fmt: skip
        else:
            found.append(Activation(burst.onset_ns, burst.end_ns, burst.bytes_up, tuple(sorted(burst.endpoints))))
            first_bytes = burst.bytes_up
    return found


def _spoken_between(onsets_ns: np.ndarray | None, after_ns: int, burst_ns: int, settings: DetectorSettings) -> bool:
    """Whether a logged utterance began after ``after_ns`` and shortly before ``burst_ns``."""
    if onsets_ns is None or not len(onsets_ns):
        return False
    near = (onsets_ns > after_ns + settings.lag_s * 1e9) & (onsets_ns <= burst_ns + settings.lead_s * 1e9)
    return bool(near.any())


def detect_activations(
    view: CaptureView, settings: DetectorSettings | None = None, onsets_ns: np.ndarray | None = None
) -> ActivationResult:
    """Activations of the device in ``view``.

    Candidates are the endpoints classified ``voice`` (taken together) and each of the few
    busiest endpoints by upstream bytes; the candidate with the most speech-long bursts (at least
    ``min_speech_s``; then the most activations, then bytes) is the voice service: it streams
    once per request for as long as the request is spoken, where periodic metrics post many
    short bursts and a one-off upload (a firmware image, a photo) is one big burst. Named voice
    endpoints without a speech-long burst of their own leave the group. The long-lived voice
    connection often predates the capture, so it has no name: then an address wins, with a warning. ``onsets_ns`` (utterance onsets on
    the capture clock, when a run log exists) keeps a burst after a new utterance from joining
    the previous activation as its second phase.
    """
    settings = settings or DetectorSettings()
    warnings: list[str] = []
    start, end = view.first_ns, view.last_ns
    def rank(group: list[str]) -> tuple[tuple[int, int, int], list[str], list[_Burst], float]:
        bursts, threshold = _bursts(_upstream(view.packets, group), start, end, settings)
        # periodic background posts many short bursts; a request streams for as long as it is spoken
        speech = sum(b.end_ns - b.onset_ns >= settings.min_speech_s * 1e9 for b in bursts)
        return (speech, len(_activations(bursts, settings, onsets_ns)), sum(b.bytes_up for b in bursts)), group, bursts, threshold

    # a name classified voice that never streams speech (a periodic API call) stays out of the group
    named = voice_endpoints(view)
    named = [n for n in named if rank([n])[0][0]] or named
    up = view.packets.up
    totals = pd.Series(view.packets.length[up]).groupby(view.packets.endpoint[up]).sum().sort_values(ascending=False)
    candidates = ([named] if named else []) + [[e] for e in totals.index[:CANDIDATES] if e not in named]
    best: tuple[tuple[int, int, int], list[str], list[_Burst], float] | None = None
    for group in candidates:
        ranked = rank(group)
        if best is None or ranked[0] > best[0]:
            best = ranked
    if best is None or not best[2]:
        warnings.append("no upstream bursts found: no activations")
        return ActivationResult([], settings.floor_bps, named, "none", warnings)
    _, chosen, bursts, threshold = best
    if chosen is named:
        return ActivationResult(_activations(bursts, settings, onsets_ns), threshold, named, "classified", warnings)
    what = "no named voice endpoint streams in the capture" if not named else f"the named voice endpoints ({', '.join(named)}) stream fewer speech-long bursts"
    warnings.append(f"{what}; taking {chosen[0]}, the endpoint with the most speech-long upstream bursts")
    return ActivationResult(_activations(bursts, settings, onsets_ns), threshold, chosen, "busiest", warnings)
