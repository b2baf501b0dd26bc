"""The outcome of an ads analysis, as ``harness ads --format json`` writes it.

Fields that cannot be computed (too few bids for a test) are ``null``, never NaN.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CpmComparison(_Out):
    """CPMs of ``persona`` against those of ``control`` (or of one bidder's bids for both)."""

    persona: str
    control: str
    bidder: str | None = Field(None, description="set for a per-bidder comparison")
    group: str | None = Field(
        None, description='set for a partnership comparison: "self", "partner" or "non-partner" bidders only'
    )
    n: int = Field(description="bids of the persona")
    n_control: int
    median_cpm: float
    median_cpm_control: float
    mean_cpm: float
    mean_cpm_control: float
    ratio: float = Field(description="median_cpm / median_cpm_control")
    ratio_ci: list[float | None] = Field(description="bootstrap interval [lo, hi] of the ratio")
    test: str = "mann-whitney-u"
    p_value: float | None = Field(description="two-sided Mann-Whitney U")
    p_adjusted: float | None = Field(description="p_value after Holm's correction; drives significant")
    p_permutation: float | None = Field(description="two-sided permutation test on the log-median difference")
    p_permutation_adjusted: float | None
    significant: bool
    per_bidder: list[CpmComparison] | None = None


class BeforeAfter(_Out):
    """A persona's CPMs on visits after its first utterance against those before it."""

    persona: str
    first_utterance_ns: int
    n_before: int
    n_after: int
    median_cpm_before: float | None
    median_cpm_after: float | None
    ratio: float | None = Field(description="median after / median before")
    ratio_ci: list[float | None]
    p_value: float | None
    p_adjusted: float | None
    p_permutation: float | None
    significant: bool


class Enrichment(_Out):
    """Is ``category`` a larger (or smaller) share of the persona's items than of the control's?"""

    dataset: str = Field(description='"audio_ads" or "interests"')
    persona: str
    control: str
    category: str
    count: int
    total: int
    count_control: int
    total_control: int
    share: float
    share_control: float
    odds_ratio: float | None = Field(description="sample odds ratio; null when infinite or undefined")
    p_value: float = Field(description="two-sided Fisher's exact test")
    p_adjusted: float
    significant: bool


class Distribution(_Out):
    """Summary of one persona's CPMs (what the box plots draw)."""

    persona: str
    n: int
    min: float
    q05: float
    q25: float
    median: float
    q75: float
    q95: float
    max: float
    mean: float


class FileRead(_Out):
    path: str
    kind: str
    format: str
    rows: int
    skipped: int
    no_currency: int = Field(0, description="Prebid bids that named no currency, read as USD as Prebid does")


class AdsResult(_Out):
    comparisons: list[CpmComparison]
    warnings: list[str]
    control: str
    control_source: str = Field(description='"option", "name" or "run logs"')
    currency: str
    alpha: float
    seed: int
    resamples: int
    confidence: float
    distributions: list[Distribution] = []
    enrichment: list[Enrichment] = []
    before_after: list[BeforeAfter] = []
    files: list[FileRead] = []
    skipped_rows: list[str] = []
    partners_of: str | None = Field(None, description="the domain whose sync partners split the bidders")
    partners: list[str] = Field([], description="its partners (registrable domains)")
    partners_source: str | None = None
    bidder_groups: dict[str, str] = Field({}, description='bidder -> "self", "partner", "non-partner" or "unknown"')
    by_partnership: list[CpmComparison] = Field(
        [], description="each persona against the control on the bids of one group of bidders"
    )
