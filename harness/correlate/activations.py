"""Activations from traffic alone: when the device woke and streamed a spoken request upstream.

An Echo uploads a request on its long-lived voice connection in a recognisable shape: an
*opening* burst (the buffered wake word and first audio, ~20-30 KB within a second), then a
*steady stream* of small audio records (~9-10 KB/s) for as long as the person speaks; the answer
comes down on the same connection. Everything else the device sends upstream lacks one of the two:
metrics posts and event reports are a few large bursts with silence between them (no steady
stream), keep-alives and the acknowledgements of a long streamed answer are tiny, a bulk upload
streams far faster than speech.

So, per endpoint of the device, upstream records (bare acknowledgements left out) closer than
``join_s`` form a *chain*. Its onset is the first record followed within ``opening_s`` by at least
``min_opening_bytes``; it is an activation when, from the onset on, at least ``min_stream_s`` worth
of 100 ms slots each carry a speech-rate amount (``slot_min_bytes`` to ``slot_max_bytes``, 3-20
KB/s: the opening's own slots and the bursts of a metrics post carry far more, acknowledgements far
less) and it uploads at least ``min_bytes``. The endpoints with activations are the voice
endpoints: no name is needed (the voice connection usually predates the capture).

On the 62 real captures (``benchmarks/activations_real.py``) the weakest request had a 13.4 KB
opening (in 0.5 s), 1.1 s of streaming slots and 32.9 KB in all; metrics and event posts on the
voice connection had at most 0.2 s of streaming slots, a metrics host that streams for ~1 s at
most a 6.0 KB opening and 7.3 KB in all: every non-request misses a threshold by 1.3-3x, every
request clears all three by 1.7x or more.

Cost is linear in packets: one sort by (endpoint, time), then run-length grouping and bincounts;
nothing is sized by the capture's time span, so a clock that steps from 1970 to today only
leaves a gap (reported in a warning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.classify import classify_name
from harness.correlate.capture import CaptureView, DevicePackets

SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class DetectorSettings:
    """What makes an upstream chain a spoken request (defaults hold for every capture; see the docs)."""

    min_record_bytes: int = 100  # smaller upstream packets are bare acknowledgements or keep-alives
    join_s: float = 2.0  # records closer than this form one chain (Wi-Fi stalls pause a stream ~1.5 s)
    opening_s: float = 0.5
    quiet_bytes: int = 2_000  # at most this much in the join_s before a new opening: not already streaming
    min_opening_bytes: int = 8_000
    slot_s: float = 0.1
    slot_min_bytes: int = 300  # 3 KB/s
    slot_max_bytes: int = 2_000  # 20 KB/s: a burst of full-size records is not speech streaming
    min_stream_s: float = 0.6
    stream_window_s: float = 5.0  # speech streams right after its opening (a Wi-Fi stall may hold it 2-3 s)
    min_bytes: int = 16_000  # an opening and a second of speech; streaming metrics hosts post under 10 KB
    split_gap_s: float = 0.5  # a logged request in a pause this long starts a new chain
    request_slack_s: float = 0.25  # a request this late for its pause still splits (the clock mapping's error)
    burst_gap_s: float = 0.5  # pauses this long separate the bursts counted in an activation
    clock_step_s: float = 3600.0  # a silence this long is the capture's clock stepping, not the device


@dataclass(frozen=True)
class Activation:
    """One spoken request: first and last upstream record of its chain (capture clock, ns), the
    upstream bytes of its records, the endpoints it streamed to, how many bursts (separated by
    ``burst_gap_s``) it held, and a confidence in [0, 1]: the weakest of its three signs (opening,
    stream, bytes), 0.5 at its threshold, 0.94 at twice it."""

    onset_ns: int
    end_ns: int
    bytes_up: int
    endpoints: tuple[str, ...]
    bursts: int = 1
    confidence: float = 1.0


@dataclass
class ActivationResult:
    activations: list[Activation]
    threshold_bps: float
    voice_endpoints: list[str]
    voice_source: str = "shape"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Chains:
    """Per chain (rows in time order within an endpoint): its endpoint, onset (the first record
    with an opening's worth of bytes in the next ``opening_s``, else the first record), last
    record, bytes from the onset, opening bytes, streaming slots from the onset, bursts."""

    endpoint: np.ndarray
    onset_ns: np.ndarray
    end_ns: np.ndarray
    bytes_up: np.ndarray
    opening: np.ndarray
    stream_slots: np.ndarray
    bursts: np.ndarray


def voice_endpoints(view: CaptureView) -> list[str]:
    """Endpoints of the device classified as voice services by name."""
    names = view.flows.loc[view.flows["name"].notna() & ~view.flows["service"], "endpoint"].unique()
    return sorted(n for n in names if classify_name(n).category == "voice")


def clock_steps(ts_ns: np.ndarray, settings: DetectorSettings) -> list[str]:
    """A warning per silence longer than ``clock_step_s`` between consecutive packets (time order)."""
    gaps = np.flatnonzero(np.diff(ts_ns) > settings.clock_step_s * SECOND_NS)
    return [
        f"the capture's clock jumps {(ts_ns[i + 1] - ts_ns[i]) / SECOND_NS / 86400:,.1f} days after packet "
        f"{i + 1} (a clock set late, e.g. by NTP after boot): that gap is skipped"
        for i in gaps
    ]


def _window_sums(t: np.ndarray, total: np.ndarray, span_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Bytes in ``[t, t + span)`` and in ``[t - span, t)`` of every record (``total``: cumulative bytes)."""
    ahead = total[np.searchsorted(t, t + span_ns)] - total[:-1]
    behind = total[:-1] - total[np.searchsorted(t, t - span_ns)]
    return ahead, behind


def _chains(packets: DevicePackets, settings: DetectorSettings, requests: np.ndarray | None) -> _Chains:
    keep = np.flatnonzero(packets.up & (packets.length >= settings.min_record_bytes))
    code, names = pd.factorize(packets.endpoint[keep], sort=True)
    ts = packets.ts_ns[keep]
    # packets come in time order, so a stable sort by endpoint alone (a radix sort) orders by (endpoint, time)
    small = code.astype(np.int16) if len(names) < 2**15 else code
    order = np.argsort(small, kind="stable") if (np.diff(ts) >= 0).all() else np.lexsort((ts, code))
    ts, length, code = ts[order], packets.length[keep][order], code[order]
    if not len(ts):
        empty = np.array([], np.int64)
        return _Chains(np.array([], object), empty, empty, empty, empty, empty, empty)
    join_ns = int(settings.join_s * SECOND_NS)
    gap = np.diff(ts)
    new_endpoint = np.diff(code) != 0
    # one time line over all endpoints that is monotone and never longer than the records times join_s:
    # pauses over join_s (a clock step from 1970 too) shrink to join_s + 1 ns, which no window crosses
    step = np.where(new_endpoint | (gap > join_ns), join_ns + 1, gap)
    t = np.r_[0, np.cumsum(step)]
    total = np.r_[0, np.cumsum(length)]
    ahead, _ = _window_sums(t, total, int(settings.opening_s * SECOND_NS))
    _, before = _window_sums(t, total, join_ns)
    opens = (ahead >= settings.min_opening_bytes) & (before <= settings.quiet_bytes)
    cut = step > join_ns
    cut |= opens[1:] & ~opens[:-1]  # a new opening after quiet (e.g. a request while a long answer streams down)
    if requests is not None and len(requests):
        # a request spoken in a pause of the stream is a new request, however short the pause
        early = np.sort(requests) - int(settings.request_slack_s * SECOND_NS)
        spoken = np.diff(np.searchsorted(early, ts, side="right")) > 0
        cut |= spoken & (gap >= settings.split_gap_s * SECOND_NS)
    starts = np.flatnonzero(np.r_[True, cut])
    ends = np.r_[starts[1:], len(ts)]
    chain = np.cumsum(np.r_[True, cut]) - 1
    index = np.arange(len(ts))
    # the request starts at its opening burst; a keep-alive record may come just before it
    first = np.minimum.reduceat(np.where(ahead >= settings.min_opening_bytes, index, len(ts)), starts)
    opened = first < ends
    first = np.where(opened, first, starts)
    since = t - t[first][chain]  # time since the chain's onset (negative before it)
    slot = since // int(settings.slot_s * SECOND_NS)
    slot_start = np.flatnonzero(np.r_[True, (np.diff(chain) != 0) | (np.diff(slot) != 0)])
    slot_bytes = np.add.reduceat(length, slot_start)
    streaming = (
        (since[slot_start] >= 0)
        & (since[slot_start] < settings.stream_window_s * SECOND_NS)
        & (slot_bytes >= settings.slot_min_bytes)
        & (slot_bytes <= settings.slot_max_bytes)
    )
    pause = np.r_[False, (gap > settings.burst_gap_s * SECOND_NS) & ~cut] & (index > first[chain])
    n = len(starts)
    return _Chains(
        endpoint=names[code[starts]],
        onset_ns=ts[first],
        end_ns=ts[ends - 1],
        bytes_up=total[ends] - total[first],
        opening=np.where(opened, ahead[first], np.maximum.reduceat(ahead, starts)),
        stream_slots=np.bincount(chain[slot_start][streaming], minlength=n),
        bursts=1 + np.bincount(chain[pause], minlength=n),
    )


def _evidence(value: np.ndarray, threshold: float) -> np.ndarray:
    """0.5 at the threshold, towards 1 above it (0.94 at twice the threshold)."""
    return 1.0 / (1.0 + (threshold / np.maximum(value, 1e-9)) ** 4)


def _merge(chains: _Chains, accepted: np.ndarray, confidence: np.ndarray) -> list[Activation]:
    """Accepted chains in onset order; chains of several endpoints overlapping in time are one request."""
    found: list[Activation] = []
    for i in accepted[np.argsort(chains.onset_ns[accepted], kind="stable")]:
        a = Activation(
            int(chains.onset_ns[i]),
            int(chains.end_ns[i]),
            int(chains.bytes_up[i]),
            (str(chains.endpoint[i]),),
            int(chains.bursts[i]),
            round(float(confidence[i]), 4),
        )
        last = found[-1] if found else None
        if last is not None and a.onset_ns <= last.end_ns:
            a = Activation(
                last.onset_ns,
                max(last.end_ns, a.end_ns),
                last.bytes_up + a.bytes_up,
                tuple(sorted(set(last.endpoints) | set(a.endpoints))),
                last.bursts + a.bursts,
                max(last.confidence, a.confidence),
            )
            found[-1] = a
        else:
            found.append(a)
    return found


def detect_activations(
    view: CaptureView, settings: DetectorSettings | None = None, requests: np.ndarray | None = None
) -> ActivationResult:
    """Activations of the device in ``view``, from the shape of its upstream traffic alone.

    ``requests`` (optional) are the onsets the bench spoke, on the capture clock (ns): a request
    that falls in a pause of at least ``split_gap_s`` starts a new chain, so a quick second
    request is not swallowed by the first. ``voice_endpoints`` are the endpoints that streamed
    requests (``voice_source`` ``classified`` when all of them have a voice name, ``shape``
    otherwise, ``none`` without activations); ``threshold_bps`` is the opening rate required.
    """
    settings = settings or DetectorSettings()
    warnings = clock_steps(view.packets.ts_ns, settings)
    threshold = settings.min_opening_bytes / settings.opening_s
    chains = _chains(view.packets, settings, requests)
    min_slots = round(settings.min_stream_s / settings.slot_s)
    signs = [
        (chains.opening, settings.min_opening_bytes),
        (chains.stream_slots, min_slots),
        (chains.bytes_up, settings.min_bytes),
    ]
    accepted = np.flatnonzero(np.logical_and.reduce([value >= threshold for value, threshold in signs]))
    named = voice_endpoints(view)
    if not len(accepted):
        warnings.append("no upload with a speech opening and stream: no activations")
        return ActivationResult([], threshold, named, "none", warnings)
    confidence = np.minimum.reduce([_evidence(value, threshold) for value, threshold in signs])
    activations = _merge(chains, accepted, confidence)
    voice = sorted({e for a in activations for e in a.endpoints})
    unnamed = [e for e in voice if e not in named]
    if unnamed:
        warnings.append(
            f"voice endpoint {', '.join(unnamed)} has no voice name in the capture (its connection predates it): "
            "found by the shape of its uploads"
        )
    return ActivationResult(activations, threshold, voice, "shape" if unnamed else "classified", warnings)
