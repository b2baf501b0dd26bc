"""What the ads stage reads, validated at the file boundary, and the clean records it keeps.

Input models accept the spellings crawlers and recorders use (Prebid's camelCase, CSV headers);
the clean records (:class:`Bid`, :class:`AudioAd`, :class:`Interest`) carry one meaning each:
CPMs in the target currency, instants as UTC epoch nanoseconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from harness.ads.currency import currency_code
from harness.ads.times import to_epoch_ns


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _size_part(value: Any) -> Any:
    # Prebid and CSVs write a missing size as "" or null; both mean "no size".
    return None if value in ("", None) else value


#: What Prebid.js assumes of a bid that names no currency.
PREBID_DEFAULT_CURRENCY = "USD"

Name = Annotated[str, BeforeValidator(_strip), Field(min_length=1)]
Text = Annotated[str, BeforeValidator(_strip)]
EpochNs = Annotated[int, BeforeValidator(to_epoch_ns)]
Currency = Annotated[str, BeforeValidator(currency_code)]
Cpm = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# the bound applies to a size given; None (no size: a video or native bid) passes as it is
Pixels = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(_size_part)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FlatBidRow(_Input):
    """One bid of the flat CSV (or a JSON record with the same fields)."""

    persona: Name
    site: Text = ""
    visit_time_ns: EpochNs = Field(validation_alias=AliasChoices("visit_time", "time", "timestamp"))
    bidder: Name
    cpm: Cpm
    currency: Currency
    ad_unit: Text = Field("", validation_alias=AliasChoices("ad_unit", "ad_unit_code", "adunit", "adunitcode"))
    width: Pixels = None
    height: Pixels = None
    won: bool = False


class PrebidBid(_Input):
    """A bid object from ``pbjs.getBidResponses()`` or ``pbjs.getAllWinningBids()``; a bid without
    a currency is in US dollars, as Prebid itself assumes (the reader warns how many were)."""

    bidder: Name = Field(validation_alias=AliasChoices("bidder", "bidderCode"))
    cpm: Cpm
    currency: Currency = PREBID_DEFAULT_CURRENCY
    currency_assumed: bool = False  # the bid named no currency

    @model_validator(mode="before")
    @classmethod
    def _note_missing_currency(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("currency") is None:
            return {**data, "currency_assumed": True}
        return data

    width: Pixels = None
    height: Pixels = None
    ad_unit: Text = Field("", validation_alias=AliasChoices("adUnitCode", "ad_unit"))
    ad_id: Text = Field("", validation_alias=AliasChoices("adId", "ad_id"))


def _unit_bids(value: Any) -> Any:
    # getBidResponses() maps each ad unit to {"bids": [...]}; some crawlers save the list alone.
    return {"bids": value} if isinstance(value, list) else value


class AdUnitResponses(_Input):
    bids: list[dict[str, Any]] = []


class PrebidVisit(_Input):
    """One page visit as a crawler saves it: who visited what, when, and Prebid's bid objects."""

    persona: Name
    site: Text = Field("", validation_alias=AliasChoices("site", "url", "page"))
    visit_time_ns: EpochNs = Field(validation_alias=AliasChoices("visit_time", "time", "timestamp"))
    bid_responses: dict[str, Annotated[AdUnitResponses, BeforeValidator(_unit_bids)]] = Field(
        default_factory=dict, validation_alias=AliasChoices("bid_responses", "getBidResponses", "bidResponses")
    )
    winning_bids: list[dict[str, Any]] = Field(
        default_factory=list, validation_alias=AliasChoices("winning_bids", "getAllWinningBids", "winningBids")
    )


class AudioAdRow(_Input):
    """One audio ad heard on a platform (a music or podcast stream) by a persona's account."""

    persona: Name
    platform: Text = ""
    time_ns: EpochNs = Field(validation_alias=AliasChoices("time", "timestamp", "played_at"))
    advertiser: Text = ""
    transcript: Text = ""
    category: Text = ""


class InterestRow(_Input):
    """One advertising interest a platform reports for a persona's account."""

    persona: Name
    interest: Name
    category: Text = ""


class Bid(BaseModel):
    """A bid as the statistics use it: CPM in the target currency, visit time in UTC epoch ns."""

    model_config = ConfigDict(frozen=True)

    persona: str
    site: str
    visit_time_ns: int
    bidder: str
    cpm: float
    currency: str
    cpm_original: float
    currency_original: str
    currency_assumed: bool = False  # the file named no currency: Prebid's default (USD) was taken
    ad_unit: str
    width: int | None
    height: int | None
    won: bool


class AudioAd(BaseModel):
    model_config = ConfigDict(frozen=True)

    persona: str
    platform: str
    time_ns: int
    advertiser: str
    transcript: str
    category: str


class Interest(BaseModel):
    model_config = ConfigDict(frozen=True)

    persona: str
    interest: str
    category: str
