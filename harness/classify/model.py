"""What classification says about one endpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Party = Literal["platform", "skill_vendor", "third_party", "unknown"]
Category = Literal["voice", "platform", "advertising", "tracking", "content", "other"]

PARTIES: tuple[Party, ...] = ("platform", "skill_vendor", "third_party", "unknown")
CATEGORIES: tuple[Category, ...] = ("voice", "platform", "advertising", "tracking", "content", "other")
AD_OR_TRACKING: frozenset[Category] = frozenset({"advertising", "tracking"})


@dataclass(frozen=True, slots=True)
class Classification:
    """Who runs an endpoint and what it is for.

    ``name``: the host name (lower case, no trailing dot) or the IP address as given.
    ``registrable_domain``: the name's registrable domain by the public-suffix list (private
    suffixes kept, so ``x.s3.amazonaws.com`` stays whole); None for addresses and unknown TLDs.
    ``organization``: the organisation that operates the domain; ``owner``: its ultimate parent
    (Chartable -> Spotify), the same as ``organization`` when it has none.
    ``party``: platform (Amazon), skill_vendor (a declared skill endpoint), third_party, or unknown
    (addresses, unknown TLDs, and customer names on shared hosting such as CloudFront or S3).
    ``ad_or_tracking``: an advertising/tracking category or a hit in EasyList/EasyPrivacy.
    ``lists``: the lists that matched (``easylist``, ``easyprivacy``, ``smart-speaker``, user lists).
    ``lists`` is a tuple because results are cached and shared.
    """

    name: str
    registrable_domain: str | None
    organization: str | None
    party: Party
    category: Category
    ad_or_tracking: bool
    lists: tuple[str, ...] = ()
    owner: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (``lists`` as a list)."""
        data = asdict(self)
        data["lists"] = list(self.lists)
        return data
