"""Map the bench's clock onto the capture's clock.

Each sync marker is one pair (when the bench sent it, by the bench clock; when the capture saw
it, by the capture host's clock). A Theil-Sen line through ``capture - sent`` against ``sent``
gives the offset and the drift; it ignores up to ~29% wild pairs (a marker queued behind a
burst), and the residuals give the jitter left after the fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import theilslopes

from harness.rundir.analysis import ClockAlignment

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
    residual = np.abs(y - (intercept + slope * x))
    return ClockAlignment(
        method="markers",
        offset_s=float(intercept),
        drift_ppm=float(slope * 1e6),
        reference_ns=reference,
        markers=len(sent),
        jitter_p50_s=float(np.percentile(residual, 50)),
        jitter_p99_s=float(np.percentile(residual, 99)),
        jitter_max_s=float(residual.max()),
    )


def manual_alignment(offset_s: float) -> ClockAlignment:
    return ClockAlignment(method="manual", offset_s=offset_s)


def host_alignment() -> ClockAlignment:
    return ClockAlignment(method="host", offset_s=0.0)
