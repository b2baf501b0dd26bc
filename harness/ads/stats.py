"""Two-sample statistics for CPMs and counts: pure functions over numpy arrays.

- :func:`bootstrap_ratio_ci`: percentile bootstrap interval of median(x) / median(y), both
  samples resampled independently, all resamples of a batch drawn at once.
- :func:`mann_whitney_p`: two-sided Mann-Whitney U (scipy), "do x's CPMs tend to be higher or
  lower than y's?"; no distribution assumed, ties handled.
- :func:`permutation_p`: two-sided permutation test of the difference of the medians of log CPM
  (scipy), "is the median shift larger than relabelling the bids at random would give?".
- :func:`holm`: Holm's step-down adjustment, family-wise error control across comparisons.
- :func:`fisher_enrichment_p`: Fisher's exact test on a 2x2 table of category counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

# Upper bound on the elements of one batch of resamples, to keep memory flat for large samples.
_BATCH_ELEMENTS = 4_000_000


def rng_for(seed: int, *labels: str) -> np.random.Generator:
    """A generator for one named comparison: the same for the same seed and labels, whatever
    else is compared in the same run (so adding a persona does not change another's results)."""
    digest = hashlib.sha256("\0".join(labels).encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm-adjusted p-values, in the input order: the i-th smallest p is multiplied by
    (m - i + 1), made non-decreasing in that order, and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def _batches(n_resamples: int, sample_size: int) -> list[int]:
    size = max(1, _BATCH_ELEMENTS // max(1, sample_size))
    full, rest = divmod(n_resamples, size)
    return [size] * full + ([rest] if rest else [])


def bootstrap_ratio_ci(
    x: ArrayLike, y: ArrayLike, rng: np.random.Generator, n_resamples: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap ``level`` interval of median(x) / median(y)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ratios = []
    for batch in _batches(n_resamples, x.size + y.size):
        mx = np.median(x[rng.integers(0, x.size, size=(batch, x.size))], axis=1)
        my = np.median(y[rng.integers(0, y.size, size=(batch, y.size))], axis=1)
        ratios.append(mx / my)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.concatenate(ratios), [tail, 1.0 - tail])
    return float(lo), float(hi)


def mann_whitney_p(x: ArrayLike, y: ArrayLike) -> float:
    """Two-sided Mann-Whitney U p-value (exact for small samples without ties, else normal
    approximation with tie and continuity corrections)."""
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def _log_median_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis) - np.median(y, axis=axis)


def permutation_p(x: ArrayLike, y: ArrayLike, rng: np.random.Generator, n_resamples: int = 2000) -> float:
    """Two-sided permutation p-value of median(log x) - median(log y) (exact when the number of
    distinct relabellings is at most ``n_resamples``)."""
    lx = np.log(np.asarray(x, dtype=float))
    ly = np.log(np.asarray(y, dtype=float))
    batch = _batches(n_resamples, lx.size + ly.size)[0]
    result = stats.permutation_test(
        (lx, ly),
        _log_median_difference,
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_resamples,
        batch=batch,
        alternative="two-sided",
        rng=rng,
    )
    return float(result.pvalue)


@dataclass(frozen=True)
class TwoSample:
    """The comparison of sample ``x`` (a persona, or "after") with ``y`` (the control, "before")."""

    n: int
    n_control: int
    median: float
    median_control: float
    mean: float
    mean_control: float
    ratio: float
    ratio_ci: tuple[float, float]
    p_mwu: float
    p_permutation: float


def compare(
    x: ArrayLike, y: ArrayLike, rng: np.random.Generator, n_resamples: int = 2000, level: float = 0.95
) -> TwoSample:
    """All two-sample figures for positive CPMs ``x`` against ``y`` (each needs >= 1 value)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    median_x, median_y = float(np.median(x)), float(np.median(y))
    return TwoSample(
        n=int(x.size),
        n_control=int(y.size),
        median=median_x,
        median_control=median_y,
        mean=float(np.mean(x)),
        mean_control=float(np.mean(y)),
        ratio=median_x / median_y,
        ratio_ci=bootstrap_ratio_ci(x, y, rng, n_resamples, level),
        p_mwu=mann_whitney_p(x, y),
        p_permutation=permutation_p(x, y, rng, n_resamples),
    )


def fisher_enrichment_p(count: int, total: int, count_control: int, total_control: int) -> tuple[float, float]:
    """(sample odds ratio, two-sided p) of Fisher's exact test on
    ``[[count, total - count], [count_control, total_control - count_control]]``."""
    table = [[count, total - count], [count_control, total_control - count_control]]
    result = stats.fisher_exact(table, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)
