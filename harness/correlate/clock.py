"""Map the bench's clock onto the capture's clock.

With markers: each sync marker is one pair (when the bench sent it, by the bench clock; when the
capture saw it, by the capture host's clock). A Theil-Sen line through ``capture - sent`` against
``sent`` gives the offset and the drift; it ignores up to ~29% wild pairs (a marker queued behind
a burst), and the residuals give the jitter left after the fit.

Without markers (:func:`align_onsets`): the utterance onsets (bench clock) against the detected
activation onsets (capture clock). The offset is where the differences of all (utterance,
activation) pairs within the search range pile up most (a sliding window of twice the tolerance
over the sorted differences); each utterance then takes the activation nearest its shifted
onset, and least squares on those pairs refine the offset (and the drift, over a long enough
span). :func:`require_overlap` refuses a capture and a run that do not overlap in time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import linregress, theilslopes

from harness.errors import HarnessError
from harness.rundir.analysis import ClockAlignment

SECOND_NS = 1_000_000_000
WAKE_LAG_S = 0.5  # an Echo's usual delay from an utterance's onset to its upload (the wake word heard)
ONSET_TOLERANCE_S = 1.0  # how far a device's upload strays from its usual lag


def fit_alignment(sent_ns: Sequence[int], seen_ns: Sequence[int]) -> ClockAlignment:
    """Fit offset and drift to (bench send time, capture time) pairs; one pair gives an offset only."""
    sent = np.asarray(sent_ns, np.int64)
    seen = np.asarray(seen_ns, np.int64)
    if len(sent) == 0 or len(sent) != len(seen):
        raise ValueError("need equal, non-empty lists of marker times")
    reference = int(sent.min())
    x = (sent - reference) / 1e9
    y = (seen - sent) / 1e9
    if len(sent) == 1 or np.ptp(x) == 0:
        slope, intercept = 0.0, float(np.median(y))
    else:
        slope, intercept, _, _ = theilslopes(y, x)
    return ClockAlignment(
        method="markers",
        offset_s=float(intercept),
        drift_ppm=float(slope * 1e6),
        reference_ns=reference,
        markers=len(sent),
        **_residuals(y - (intercept + slope * x)),
    )


def manual_alignment(offset_s: float) -> ClockAlignment:
    return ClockAlignment(method="manual", offset_s=offset_s)


def host_alignment() -> ClockAlignment:
    return ClockAlignment(method="host", offset_s=0.0)


def _residuals(residual: np.ndarray) -> dict[str, float]:
    residual = np.abs(residual)
    return {
        "jitter_p50_s": float(np.percentile(residual, 50)),
        "jitter_p99_s": float(np.percentile(residual, 99)),
        "jitter_max_s": float(residual.max()),
    }


def _densest(values: np.ndarray, width: float) -> tuple[int, int]:
    """Index range ``[lo, hi)`` of sorted ``values`` holding the most values within ``width``."""
    counts = np.searchsorted(values, values + width, side="right") - np.arange(len(values))
    lo = int(np.argmax(counts))
    return lo, lo + int(counts[lo])


def _pair(
    bench: np.ndarray, capture: np.ndarray, offset_s: float, drift: float, tolerance_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (utterance, activation) pairs: each utterance's nearest activation after the shift,
    within the tolerance, each activation used once (by its nearest utterance)."""
    expected = bench + offset_s + drift * (bench - bench[0])
    right = np.minimum(np.searchsorted(capture, expected), len(capture) - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(capture[left] - expected) <= np.abs(capture[right] - expected), left, right)
    error = np.abs(capture[nearest] - expected)
    ok = np.flatnonzero(error <= tolerance_s)
    # an activation claimed by two utterances goes to the closer one
    order = ok[np.lexsort((error[ok], nearest[ok]))]
    keep = order[np.r_[True, np.diff(nearest[order]) != 0]] if len(order) else order
    keep = np.sort(keep)
    return keep, nearest[keep]


def align_onsets(
    utterance_ns: Sequence[int],
    activation_ns: Sequence[int],
    tolerance_s: float = ONSET_TOLERANCE_S,
    max_offset_s: float = 300.0,
    lag_s: float = 0.0,
    min_pairs: int = 3,
    drift_span_s: float = 600.0,
) -> ClockAlignment:
    """Offset (and drift) of the capture clock against the bench clock from onsets alone.

    ``utterance_ns``: when the bench spoke (bench clock); ``activation_ns``: when the device
    uploaded (capture clock, from :func:`~harness.correlate.activations.detect_activations`).
    ``lag_s`` is the device's usual delay from an utterance's onset to its upload (wake word);
    the offset is the clock offset once it is removed (with 0 it includes the lag). Offsets are
    searched within ``max_offset_s`` of zero; the drift is fitted only when the matched pairs
    span ``drift_span_s`` and it is significant (3 standard errors). Residuals of the pairs are
    reported as the jitter; the confidence is the share of utterances matched times
    ``1 - rival/best``, where ``rival`` is the count of the best offset at least two tolerances
    away (a strictly periodic schedule is ambiguous by its period and says so). Raises
    :class:`HarnessError` when fewer than ``min_pairs`` match.
    """
    bench = np.sort(np.asarray(utterance_ns, np.int64))
    capture = np.sort(np.asarray(activation_ns, np.int64))
    if len(bench) == 0 or len(capture) == 0:
        raise HarnessError("cannot align clocks from onsets: no utterances or no activations")
    reference = int(bench[0])
    b = (bench - reference) / SECOND_NS
    c = (capture - reference) / SECOND_NS - lag_s
    # every pair whose difference is a candidate offset, found per utterance by two binary searches
    lo = np.searchsorted(c, b - max_offset_s)
    hi = np.searchsorted(c, b + max_offset_s, side="right")
    counts = hi - lo
    if not counts.sum():
        raise HarnessError(f"cannot align clocks from onsets: no activation within {max_offset_s:g} s of any utterance")
    which = np.repeat(np.arange(len(b)), counts)
    pair = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)
    differences = np.sort(c[pair] - b[which])
    first, last = _densest(differences, 2 * tolerance_s)
    offset = float(np.median(differences[first:last]))
    away = np.abs(differences - offset) > 2 * tolerance_s
    rival = _densest(differences[away], 2 * tolerance_s) if away.any() else (0, 0)
    drift = 0.0
    for _ in range(2):  # pair, fit, pair again with the fitted line
        u, a = _pair(b, c, offset, drift, tolerance_s)
        if len(u) < min_pairs:
            raise HarnessError(
                f"cannot align clocks from onsets: only {len(u)} of {len(b)} utterances have an activation "
                f"within {tolerance_s:g} s of one offset (need {min_pairs})"
            )
        x, y = b[u], c[a] - b[u]
        line = linregress(x, y) if np.ptp(x) >= drift_span_s else None
        # latency jitter alone tilts a line a little: a drift counts when it is 3 standard errors out
        if line is not None and abs(line.slope) > 3 * line.stderr:
            drift, offset = float(line.slope), float(line.intercept)
        else:
            drift, offset = 0.0, float(np.mean(y))
    best = last - first
    confidence = len(u) / len(b) * (1 - (rival[1] - rival[0]) / best)
    return ClockAlignment(
        method="activations",
        offset_s=offset,
        drift_ppm=drift * 1e6,
        reference_ns=reference,
        matched=len(u),
        confidence=round(max(0.0, confidence), 4),
        **_residuals(y - (offset + drift * x)),
    )


def require_overlap(run_ns: tuple[int, int], capture_ns: tuple[int, int], clock: ClockAlignment) -> None:
    """Raise :class:`HarnessError` (one line) unless the run's span, mapped onto the capture clock,
    overlaps the capture's span (both ``(first, last)`` in ns)."""
    start, end = (int(clock.to_capture_ns(t)) for t in run_ns)
    if start <= capture_ns[1] and capture_ns[0] <= end:
        return
    raise HarnessError(
        f"the capture ({_utc(capture_ns[0])} to {_utc(capture_ns[1])}) and the run ({_utc(start)} to {_utc(end)}, "
        f"on the capture clock) do not overlap in time: wrong capture, or give the clock offset"
    )


def _utc(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="s") + "Z"
