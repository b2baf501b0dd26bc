"""Ads statistics: false-positive rate on null data, a planted 30x effect, and timing.

Run: .venv/bin/python benchmarks/ads_stats.py [--datasets 200] [--seed 0]

- Null: each data set has a control and three personas whose CPMs all come from one lognormal
  (rounded to cents, so ties occur as in real bids); any persona found significant is a false
  positive. Printed per comparison (raw and Holm-adjusted) and per data set (family-wise),
  for the Mann-Whitney U test and the permutation test, with Clopper-Pearson 95% intervals.
- Planted: a persona with bids 30x the control's and one with 1x; the 30x ratio estimate, its
  interval and detection, and whether the 1x persona is (wrongly) detected, over many data sets.
- Timing: one full comparison (analyse) against a single scipy Mann-Whitney call on the same data.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import stats as sps

from harness.ads import Options, analyse
from harness.ads.ingest import AdsData
from harness.ads.models import Bid


def bids(persona: str, cpms: np.ndarray) -> list[Bid]:
    return [
        Bid(
            persona=persona,
            site="s",
            visit_time_ns=i,
            bidder=f"b{i % 3}",
            cpm=float(c),
            currency="USD",
            cpm_original=float(c),
            currency_original="USD",
            ad_unit="u",
            width=None,
            height=None,
            won=False,
        )
        for i, c in enumerate(cpms)
    ]


def cents(values: np.ndarray) -> np.ndarray:
    return np.maximum(0.01, np.round(values, 2))


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    lo = sps.beta.ppf(0.025, k, n - k + 1) if k else 0.0
    hi = sps.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def rate(label: str, k: int, n: int) -> None:
    lo, hi = clopper_pearson(k, n)
    print(f"  {label:<46} {k:>4}/{n:<4} = {k / n:6.2%}  (95% CI {lo:.2%}-{hi:.2%})")


def null_study(count: int, seed: int, options: Options) -> None:
    rng = np.random.default_rng(seed)
    personas = ("p1", "p2", "p3")
    hits = dict.fromkeys(("mwu", "perm", "mwu_holm", "perm_holm", "family_mwu", "family_perm"), 0)
    tests = 0
    started = time.perf_counter()
    for _ in range(count):
        n = int(rng.integers(20, 200))
        data = AdsData(
            bids=[bid for name in ("control", *personas) for bid in bids(name, cents(rng.lognormal(-0.5, 1.0, n)))]
        )
        result = analyse(data, options)
        rows = result.comparisons
        tests += len(rows)
        hits["mwu"] += sum(row.p_value < options.alpha for row in rows)
        hits["perm"] += sum(row.p_permutation < options.alpha for row in rows)
        hits["mwu_holm"] += sum(row.significant for row in rows)
        hits["perm_holm"] += sum(row.p_permutation_adjusted < options.alpha for row in rows)
        hits["family_mwu"] += any(row.significant for row in rows)
        hits["family_perm"] += any(row.p_permutation_adjusted < options.alpha for row in rows)
    elapsed = time.perf_counter() - started
    print(f"null data sets: {count} (control + 3 personas, same lognormal, n 20-199 each), alpha {options.alpha}")
    rate("per comparison, Mann-Whitney U p < alpha", hits["mwu"], tests)
    rate("per comparison, permutation p < alpha", hits["perm"], tests)
    rate("per comparison, significant (Holm MWU)", hits["mwu_holm"], tests)
    rate("per comparison, Holm permutation p < alpha", hits["perm_holm"], tests)
    rate("per data set, any significant (Holm MWU)", hits["family_mwu"], count)
    rate("per data set, any Holm permutation p < alpha", hits["family_perm"], count)
    print(f"  ({elapsed:.1f} s for {count} data sets)")


def planted_study(count: int, seed: int, options: Options, n: int = 500) -> None:
    rng = np.random.default_rng(seed + 1)
    ratios, covered, found, within, false_found = [], 0, 0, 0, 0
    first = None
    for index in range(count):
        data = AdsData(
            bids=bids("control", cents(rng.lognormal(-0.5, 1.0, n)))
            + bids("health", cents(30 * rng.lognormal(-0.5, 1.0, n)))
            + bids("same", cents(rng.lognormal(-0.5, 1.0, n)))
        )
        rows = {row.persona: row for row in analyse(data, options).comparisons}
        health, same = rows["health"], rows["same"]
        if index == 0:
            first = health, same
        ratios.append(health.ratio)
        covered += health.ratio_ci[0] <= 30 <= health.ratio_ci[1]
        found += health.significant
        within += abs(health.ratio / 30 - 1) <= 0.10
        false_found += same.significant
    health, same = first
    print(f"planted effect: control, 30x persona, 1x persona; lognormal(sigma 1), {n} bids each")
    print(
        f"  first data set: 30x ratio {health.ratio:.2f} [{health.ratio_ci[0]:.2f}, {health.ratio_ci[1]:.2f}], "
        f"p_adj {health.p_adjusted:.2g}, significant {health.significant}; "
        f"1x ratio {same.ratio:.3f} [{same.ratio_ci[0]:.3f}, {same.ratio_ci[1]:.3f}], p_adj {same.p_adjusted:.3f}, "
        f"significant {same.significant}"
    )
    print(
        f"  over {count} data sets: 30x detected {found}/{count}, ratio within 10% of 30 in {within}/{count}, "
        f"median ratio {statistics.median(ratios):.2f}, 95% interval covers 30 in {covered}/{count}, "
        f"1x detected {false_found}/{count}"
    )


def timing(seed: int, options: Options, n: int = 1000, repeats: int = 5) -> None:
    rng = np.random.default_rng(seed + 2)
    data = AdsData(
        bids=[bid for name in ("control", "a", "b", "c") for bid in bids(name, cents(rng.lognormal(0, 1, n)))]
    )
    x, y = rng.lognormal(0, 1, n), rng.lognormal(0, 1, n)
    full, base = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        analyse(data, options)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        sps.mannwhitneyu(x, y)
        base.append(time.perf_counter() - started)
    full_s, base_s = statistics.median(full), statistics.median(base)
    print(
        f"timing: one full comparison (control + 3 personas x {n} bids, 3 bidders each, {options.resamples} resamples)"
    )
    print(
        f"  median {full_s * 1000:.0f} ms over {repeats} runs; baseline one scipy mannwhitneyu {base_s * 1000:.2f} ms; "
        f"ratio {full_s / base_s:.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--planted", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    options = Options(seed=args.seed, resamples=args.resamples)
    null_study(args.datasets, args.seed, options)
    planted_study(args.planted, args.seed, options)
    timing(args.seed, options)


if __name__ == "__main__":
    main()
