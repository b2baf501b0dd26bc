"""Statistics of the ads stage: agreement with scipy and with hand computation, planted effects."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.ads import Options, analyse, stats
from harness.ads.ingest import AdsData
from harness.ads.models import Bid


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_ties_and_empty_input():
    assert stats.holm([0.5, 0.5, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert stats.holm([0.02]) == pytest.approx([0.02])
    assert stats.holm([]).size == 0


def test_mann_whitney_is_scipys_two_sided_test():
    rng = np.random.default_rng(3)
    x, y = rng.lognormal(0.3, 1, 40), rng.lognormal(0, 1, 35)
    assert stats.mann_whitney_p(x, y) == sps.mannwhitneyu(x, y, alternative="two-sided").pvalue


def test_permutation_p_is_exact_for_small_samples():
    x = np.array([1.2, 3.4, 2.2, 5.0, 4.1])
    y = np.array([0.5, 0.9, 1.1, 2.0, 0.7])
    observed = np.median(np.log(x)) - np.median(np.log(y))
    pooled = np.log(np.concatenate([x, y]))
    # Brute force over all 252 relabellings; scipy's two-sided p is 2 * the smaller tail.
    diffs = []
    for chosen in itertools.combinations(range(10), 5):
        mask = np.zeros(10, bool)
        mask[list(chosen)] = True
        diffs.append(np.median(pooled[mask]) - np.median(pooled[~mask]))
    diffs = np.array(diffs)
    eps = 1e-12
    expected = min(1.0, 2 * min(np.mean(diffs >= observed - eps), np.mean(diffs <= observed + eps)))
    assert stats.permutation_p(x, y, np.random.default_rng(0), n_resamples=2000) == pytest.approx(expected)


def test_bootstrap_interval_agrees_with_scipys_percentile_bootstrap():
    rng = np.random.default_rng(11)
    x, y = rng.lognormal(1, 0.8, 60), rng.lognormal(0, 0.8, 50)
    lo, hi = stats.bootstrap_ratio_ci(x, y, np.random.default_rng(1), n_resamples=4000)
    reference = sps.bootstrap(
        (x, y),
        lambda a, b, axis=-1: np.median(a, axis=axis) / np.median(b, axis=axis),
        method="percentile",
        n_resamples=4000,
        rng=np.random.default_rng(2),
    ).confidence_interval
    # Two independent Monte Carlo estimates of the same interval: close on a log scale.
    assert math.log(lo) == pytest.approx(math.log(reference.low), abs=0.08)
    assert math.log(hi) == pytest.approx(math.log(reference.high), abs=0.08)
    assert lo < np.median(x) / np.median(y) < hi


def test_fisher_matches_the_hypergeometric_sum():
    # [[4, 1], [0, 6]]: p = sum of table probabilities no larger than the observed one.
    def prob(a):
        return math.comb(5, a) * math.comb(6, 4 - a) / math.comb(11, 4)

    observed = prob(4)
    expected = sum(prob(a) for a in range(0, 5) if prob(a) <= observed * (1 + 1e-9))
    odds, p = stats.fisher_enrichment_p(4, 5, 0, 6)
    assert p == pytest.approx(expected)
    assert math.isinf(odds)


def test_compare_reports_scipy_figures_and_seeded_intervals():
    rng = np.random.default_rng(5)
    x, y = rng.lognormal(1, 1, 30), rng.lognormal(0, 1, 30)
    first = stats.compare(x, y, stats.rng_for(7, "a"), n_resamples=500)
    again = stats.compare(x, y, stats.rng_for(7, "a"), n_resamples=500)
    other = stats.compare(x, y, stats.rng_for(8, "a"), n_resamples=500)
    assert first == again
    assert first.ratio_ci != other.ratio_ci
    assert first.median == np.median(x) and first.mean_control == pytest.approx(np.mean(y))
    assert first.p_mwu == sps.mannwhitneyu(x, y, alternative="two-sided").pvalue


def _bids(persona: str, cpms: np.ndarray) -> list[Bid]:
    return [
        Bid(
            persona=persona,
            site="s.example",
            visit_time_ns=i,
            bidder="b",
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


def test_planted_thirtyfold_effect_is_found_and_the_null_persona_is_not():
    rng = np.random.default_rng(2023)
    data = AdsData(
        bids=_bids("control", rng.lognormal(0, 0.8, 800))
        + _bids("health", 30 * rng.lognormal(0, 0.8, 800))
        + _bids("same", rng.lognormal(0, 0.8, 800))
    )
    result = analyse(data, Options(seed=1, resamples=1000))
    rows = {row.persona: row for row in result.comparisons}
    assert rows["health"].significant
    assert rows["health"].ratio == pytest.approx(30, rel=0.10)
    lo, hi = rows["health"].ratio_ci
    assert lo < 30 < hi
    assert not rows["same"].significant
    assert rows["same"].p_adjusted >= rows["same"].p_value
    assert rows["same"].ratio_ci[0] < 1 < rows["same"].ratio_ci[1]


def test_results_of_a_persona_do_not_depend_on_the_other_personas():
    rng = np.random.default_rng(4)
    control, a, b = (rng.lognormal(0, 1, 50) for _ in range(3))
    alone = analyse(AdsData(bids=_bids("control", control) + _bids("a", a)), Options(resamples=300))
    both = analyse(AdsData(bids=_bids("control", control) + _bids("a", a) + _bids("b", b)), Options(resamples=300))
    assert alone.comparisons[0].ratio_ci == both.comparisons[0].ratio_ci
    assert alone.comparisons[0].p_permutation == both.comparisons[0].p_permutation


def test_per_bidder_rows_need_enough_bids_in_both_groups():
    rng = np.random.default_rng(9)
    bids = _bids("control", rng.lognormal(0, 1, 30)) + _bids("p", rng.lognormal(0, 1, 30))
    bids += [bid.model_copy(update={"bidder": "rare"}) for bid in _bids("p", rng.lognormal(0, 1, 3))]
    result = analyse(AdsData(bids=bids), Options(resamples=200, min_bidder_n=10))
    assert [row.bidder for row in result.comparisons[0].per_bidder] == ["b"]
