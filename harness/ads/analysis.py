"""Compare each persona's ads with the control's: CPMs (overall and per bidder), audio-ad and
interest categories, and CPMs before/after a persona first spoke.

Holm families: all persona comparisons; all per-bidder comparisons; all before/after
comparisons; all (persona, category) tests of one dataset. ``significant`` is the Holm-adjusted
Mann-Whitney p (Fisher's p for categories) below ``alpha``; the permutation p is reported beside
it as a check that does not rest on the rank test's assumptions.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from harness.ads import stats
from harness.ads.ingest import AdsData
from harness.ads.models import AudioAd, Bid, Interest
from harness.ads.partners import GROUPS, Partnership
from harness.ads.result import AdsResult, BeforeAfter, CpmComparison, Distribution, Enrichment, FileRead
from harness.ads.runs import RunFacts
from harness.errors import HarnessError

CONTROL_NAMES = ("control", "vanilla")
K = TypeVar("K", bound=Hashable)
MAX_ROW_WARNINGS = 20


@dataclass(frozen=True)
class Options:
    control: str | None = None
    alpha: float = 0.05
    seed: int = 0
    resamples: int = 2000
    confidence: float = 0.95
    min_n: int = 5
    min_bidder_n: int = 10
    currency: str = "USD"
    partnership: Partnership | None = None  # split bidders by sync partnership with a domain


def choose_control(personas: Sequence[str], explicit: str | None, runs: RunFacts | None) -> tuple[str, str]:
    """(control persona, how it was chosen): ``--control``, else a persona named control or
    vanilla, else the one the run logs mark as control."""
    known = sorted(set(personas))
    listing = ", ".join(known) or "none"
    if explicit is not None:
        if explicit not in known:
            raise HarnessError(f"control persona {explicit!r} has no data (personas: {listing})")
        return explicit, "option"
    named = [persona for persona in known if persona.lower() in CONTROL_NAMES]
    if len(named) > 1:
        raise HarnessError(f"several personas could be the control ({', '.join(named)}): pass --control")
    if named:
        return named[0], "name"
    marked = sorted(p for p, control in (runs.control.items() if runs else ()) if control and p in known)
    if len(marked) > 1:
        raise HarnessError(f"the run logs mark several controls ({', '.join(marked)}): pass --control")
    if marked:
        return marked[0], "run logs"
    raise HarnessError(f"no control persona: pass --control PERSONA (personas: {listing})")


_HOW = {
    "option": "given with --control",
    "name": "chosen by its name (pass --control to choose another)",
    "run logs": "marked control in the run logs (pass --control to choose another)",
}


def analyse(data: AdsData, options: Options, runs: RunFacts | None = None) -> AdsResult:
    """The whole comparison of ``data``; warnings say what was chosen, skipped or not testable."""
    personas = {row.persona for rows in (data.bids, data.audio_ads, data.interests) for row in rows}
    control, how = choose_control(sorted(personas), options.control, runs)
    warnings = [f"control persona {control!r}: {_HOW[how]}"]
    warnings += _row_warnings(data)
    if runs:
        warnings += runs.warnings
    cpms = _cpms_by(data.bids, lambda bid: bid.persona)
    comparisons = _persona_comparisons(data.bids, cpms, control, options, warnings)
    partnership = options.partnership
    groups = {bid.bidder: partnership.group(bid.bidder) for bid in data.bids} if partnership else {}
    return AdsResult(
        comparisons=comparisons,
        warnings=warnings,
        control=control,
        control_source=how,
        currency=options.currency,
        alpha=options.alpha,
        seed=options.seed,
        resamples=options.resamples,
        confidence=options.confidence,
        distributions=[_distribution(persona, values) for persona, values in sorted(cpms.items())],
        enrichment=_enrichments(data, control, options, warnings),
        before_after=_before_after(data.bids, runs, options, warnings) if runs else [],
        files=[FileRead(**vars(summary)) for summary in data.files],
        skipped_rows=[str(error) for error in data.skipped],
        partners_of=partnership.domain if partnership else None,
        partners=sorted(partnership.partners) if partnership else [],
        partners_source=partnership.source if partnership else None,
        bidder_groups=dict(sorted(groups.items())),
        by_partnership=_partnership_comparisons(data.bids, groups, control, options, warnings) if groups else [],
    )


def _row_warnings(data: AdsData) -> list[str]:
    warnings = []
    for summary in data.files:
        if summary.no_currency:
            warnings.append(
                f"{summary.path}: {summary.no_currency} Prebid bid(s) name no currency: read as USD, as Prebid does"
            )
        if not summary.skipped:
            continue
        errors = [str(error) for error in data.skipped if error.path == summary.path]
        warnings += errors[:MAX_ROW_WARNINGS]
        more = len(errors) - MAX_ROW_WARNINGS
        tail = f" ({more} more not shown)" if more > 0 else ""
        warnings.append(f"{summary.path}: skipped {summary.skipped} bad row(s){tail}")
    return warnings


def _cpms_by(bids: Sequence[Bid], key: Callable[[Bid], K]) -> dict[K, np.ndarray]:
    groups: dict[K, list[float]] = defaultdict(list)
    for bid in bids:
        groups[key(bid)].append(bid.cpm)
    return {name: np.asarray(values) for name, values in groups.items()}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _cpm_comparison(
    persona: str,
    x: np.ndarray,
    control: str,
    y: np.ndarray,
    options: Options,
    bidder: str | None = None,
    group: str | None = None,
) -> tuple[CpmComparison, bool]:
    """The comparison row, and whether it was tested (both samples large enough)."""
    tested = min(x.size, y.size) >= (options.min_bidder_n if bidder else options.min_n)
    if tested:
        labels = ("cpm", persona, control, bidder or "") + ((group,) if group else ())
        rng = stats.rng_for(options.seed, *labels)
        result = stats.compare(x, y, rng, options.resamples, options.confidence)
        ci = list(result.ratio_ci)
        p, p_perm = result.p_mwu, result.p_permutation
    else:
        ci, p, p_perm = [None, None], None, None
    median, median_control = float(np.median(x)), float(np.median(y))
    row = CpmComparison(
        persona=persona,
        control=control,
        bidder=bidder,
        group=group,
        n=int(x.size),
        n_control=int(y.size),
        median_cpm=median,
        median_cpm_control=median_control,
        mean_cpm=float(np.mean(x)),
        mean_cpm_control=float(np.mean(y)),
        ratio=median / median_control,
        ratio_ci=ci,
        p_value=p,
        p_adjusted=None,
        p_permutation=p_perm,
        p_permutation_adjusted=None,
        significant=False,
    )
    return row, tested


def _adjust(rows: list, alpha: float, with_permutation: bool = True) -> None:
    """Fill p_adjusted (and p_permutation_adjusted) with Holm over the tested rows; set significant."""
    tested = [row for row in rows if row.p_value is not None]
    for row, adjusted in zip(tested, stats.holm([row.p_value for row in tested]), strict=True):
        row.p_adjusted = float(adjusted)
        row.significant = bool(adjusted < alpha)
    if with_permutation:
        for row, adjusted in zip(tested, stats.holm([row.p_permutation for row in tested]), strict=True):
            row.p_permutation_adjusted = float(adjusted)


def _persona_comparisons(
    bids: Sequence[Bid], cpms: dict[str, np.ndarray], control: str, options: Options, warnings: list[str]
) -> list[CpmComparison]:
    if not bids:
        return []
    if control not in cpms:
        warnings.append(f"the control {control!r} has no bids: no CPM comparison")
        return []
    rows = []
    for persona in sorted(cpms):
        if persona == control:
            continue
        row, tested = _cpm_comparison(persona, cpms[persona], control, cpms[control], options)
        if not tested:
            warnings.append(
                f"{persona}: {row.n} bid(s) against the control's {row.n_control}: "
                f"too few to test (need {options.min_n} each)"
            )
        rows.append(row)
    _adjust(rows, options.alpha)
    by_bidder = _cpms_by(bids, lambda bid: (bid.persona, bid.bidder))
    bidder_rows = []
    for row in rows:
        row.per_bidder = []
        for (persona, bidder), values in sorted(by_bidder.items()):
            control_values = by_bidder.get((control, bidder))
            if persona != row.persona or control_values is None:
                continue
            bidder_row, tested = _cpm_comparison(persona, values, control, control_values, options, bidder)
            if tested:
                row.per_bidder.append(bidder_row)
                bidder_rows.append(bidder_row)
    _adjust(bidder_rows, options.alpha)
    return rows


def _partnership_comparisons(
    bids: Sequence[Bid], groups: dict[str, str], control: str, options: Options, warnings: list[str]
) -> list[CpmComparison]:
    """Each persona against the control within each group of bidders; Holm across all of them."""
    unknown = sorted(bidder for bidder, group in groups.items() if group == "unknown")
    if unknown:
        warnings.append(
            f"bidders with no known domain, left out of the partner comparison: {', '.join(unknown)} "
            "(give the bidder as a host name or add it to harness/ads/data/bidders.yaml)"
        )
    rows = []
    for group in GROUPS:
        cpms = _cpms_by([bid for bid in bids if groups[bid.bidder] == group], lambda bid: bid.persona)
        if not cpms:
            continue
        if control not in cpms:
            warnings.append(f"the control {control!r} has no bids from {group} bidders: no comparison")
            continue
        for persona in sorted(cpms):
            if persona == control:
                continue
            row, tested = _cpm_comparison(persona, cpms[persona], control, cpms[control], options, group=group)
            if not tested:
                warnings.append(
                    f"{persona}, {group} bidders: {row.n} bid(s) against the control's {row.n_control}: "
                    f"too few to test (need {options.min_n} each)"
                )
            rows.append(row)
    _adjust(rows, options.alpha)
    return rows


def _distribution(persona: str, values: np.ndarray) -> Distribution:
    q = np.quantile(values, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return Distribution(
        persona=persona,
        n=int(values.size),
        min=float(q[0]),
        q05=float(q[1]),
        q25=float(q[2]),
        median=float(q[3]),
        q75=float(q[4]),
        q95=float(q[5]),
        max=float(q[6]),
        mean=float(np.mean(values)),
    )


def _enrichments(data: AdsData, control: str, options: Options, warnings: list[str]) -> list[Enrichment]:
    rows: list[Enrichment] = []
    datasets: dict[str, Sequence[AudioAd | Interest]] = {"audio_ads": data.audio_ads, "interests": data.interests}
    for name, items in datasets.items():
        if not items:
            continue
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for item in items:
            counts[item.persona][item.category] += 1
        if control not in counts:
            warnings.append(f"the control {control!r} has no {name.replace('_', ' ')}: no enrichment test")
            continue
        family = []
        base = counts[control]
        for persona in sorted(counts):
            if persona == control:
                continue
            own = counts[persona]
            total, total_control = sum(own.values()), sum(base.values())
            for category in sorted(set(own) | set(base)):
                odds, p = stats.fisher_enrichment_p(own[category], total, base[category], total_control)
                family.append(
                    Enrichment(
                        dataset=name,
                        persona=persona,
                        control=control,
                        category=category,
                        count=own[category],
                        total=total,
                        count_control=base[category],
                        total_control=total_control,
                        share=own[category] / total,
                        share_control=base[category] / total_control,
                        odds_ratio=_finite(odds),
                        p_value=p,
                        p_adjusted=p,
                        significant=False,
                    )
                )
        for row, adjusted in zip(family, stats.holm([row.p_value for row in family]), strict=True):
            row.p_adjusted = float(adjusted)
            row.significant = bool(adjusted < options.alpha)
        rows += family
    return rows


def _before_after(bids: Sequence[Bid], runs: RunFacts, options: Options, warnings: list[str]) -> list[BeforeAfter]:
    rows = []
    for persona in sorted({bid.persona for bid in bids}):
        onset = runs.first_utterance_ns.get(persona)
        if onset is None:
            warnings.append(f"{persona}: no first utterance in the given runs: no before/after comparison")
            continue
        before = np.asarray([bid.cpm for bid in bids if bid.persona == persona and bid.visit_time_ns < onset])
        after = np.asarray([bid.cpm for bid in bids if bid.persona == persona and bid.visit_time_ns >= onset])
        tested = min(before.size, after.size) >= options.min_n
        if tested:
            rng = stats.rng_for(options.seed, "before-after", persona)
            result = stats.compare(after, before, rng, options.resamples, options.confidence)
            ci, p, p_perm = list(result.ratio_ci), result.p_mwu, result.p_permutation
        else:
            ci, p, p_perm = [None, None], None, None
            warnings.append(
                f"{persona}: {before.size} bid(s) before its first utterance and {after.size} after: "
                f"too few to test (need {options.min_n} each)"
            )
        median_before = float(np.median(before)) if before.size else None
        median_after = float(np.median(after)) if after.size else None
        rows.append(
            BeforeAfter(
                persona=persona,
                first_utterance_ns=onset,
                n_before=int(before.size),
                n_after=int(after.size),
                median_cpm_before=median_before,
                median_cpm_after=median_after,
                ratio=median_after / median_before if median_after and median_before else None,
                ratio_ci=ci,
                p_value=p,
                p_adjusted=None,
                p_permutation=p_perm,
                significant=False,
            )
        )
    _adjust(rows, options.alpha, with_permutation=False)
    return rows
