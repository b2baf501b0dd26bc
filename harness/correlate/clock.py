"""Map the bench's clock onto the capture's clock.

Each sync marker is one pair (when the bench sent it, by the bench clock; when the capture saw
it, by the capture host's clock). A Theil-Sen line through ``capture - sent`` against ``sent``
gives the offset and the drift; it ignores up to ~29% wild pairs (a marker queued behind a
burst), and the residuals give the jitter left after the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy.stats import theilslopes

Method = Literal["markers", "manual", "host"]


class ClockAlignment(BaseModel):
    """``capture_ns = bench_ns + offset + drift * (bench_ns - reference)``."""

    method: Method = Field(description="markers: fitted; manual: --clock-offset; host: both clocks taken as one")
    offset_s: float = Field(description="capture clock minus bench clock at the reference instant")
    drift_ppm: float = Field(0.0, description="how fast the capture clock gains on the bench clock, parts per million")
    reference_ns: int = Field(0, description="bench instant the offset holds at (the first marker)")
    markers: int = Field(0, description="marker pairs used")
    jitter_p50_s: float | None = Field(None, description="median absolute residual of the fit")
    jitter_p99_s: float | None = None
    jitter_max_s: float | None = None

    def to_capture_ns(self, bench_ns: int | np.ndarray) -> int | np.ndarray:
        """A bench-clock instant (or array of them) on the capture clock."""
        elapsed = np.asarray(bench_ns, np.int64) - self.reference_ns
        shifted = np.asarray(bench_ns, np.int64) + np.round(self.offset_s * 1e9 + self.drift_ppm * 1e-6 * elapsed).astype(np.int64)
        return int(shifted) if np.ndim(shifted) == 0 else shifted


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
