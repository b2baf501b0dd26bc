"""Combine the suffix list, organisation map, filter lists and endpoint lists into one verdict."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from harness.classify.filterlists import EASYLIST, EASYPRIVACY, filter_hits
from harness.classify.memo import Memo
from harness.classify.model import AD_OR_TRACKING, Category, Classification, Party
from harness.classify.suffixes import registrable_domain, under_private_suffix

if TYPE_CHECKING:
    from harness.classify.endpoints import EndpointList, EndpointMatch

# The endpoint and organisation lists (pydantic models, YAML) are imported where first needed:
# names already in the memo never need them.

ENDPOINTS_ENV = "HARNESS_ENDPOINTS"
ORGANIZATIONS = "organizations"
PLATFORM_OWNER = "Amazon"
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")
_CACHE_SIZE = 1 << 16


class Classifier:
    """Classifies host names against the shipped lists plus ``extra_lists`` (tried first, in order).

    Results are cached per name, in memory and on disk (:mod:`harness.classify.memo`, written by
    :meth:`save`); build one Classifier per set of lists and reuse it.
    """

    def __init__(self, extra_lists: Iterable[str | Path] = ()) -> None:
        extra_lists = tuple(extra_lists)
        self._extra: tuple[EndpointList, ...] = ()
        if extra_lists:
            from harness.classify.endpoints import EndpointList

            self._extra = tuple(EndpointList.load(p) for p in extra_lists)
        self._memo = Memo("names", extra_lists)
        self._cached = lru_cache(maxsize=_CACHE_SIZE)(self._remembered)

    @property
    def lists(self) -> tuple[EndpointList, ...]:
        """The lists tried in order: user lists, then the shipped one (loaded on first need)."""
        from harness.classify.endpoints import shipped_list

        return (*self._extra, shipped_list())

    def save(self) -> None:
        """Keep the results worked out so far for later processes (see :mod:`harness.classify.memo`)."""
        from harness.classify import networks, suffixes

        for memo in (self._memo, networks.MEMO, suffixes.MEMO):
            memo.save()

    def classify_name(self, name: str, skill_domains: Iterable[str] = ()) -> Classification:
        """Classify a host name; names equal to or under a ``skill_domains`` entry are skill_vendor."""
        result = self._cached(name.strip().rstrip(".").lower())
        if skill_domains and _under_any(result.name, skill_domains):
            return _replace(result, party="skill_vendor")
        return result

    def _remembered(self, name: str) -> Classification:
        fields = self._memo.get(name, lambda n: self._classify(n).to_dict())
        return Classification(**{**fields, "lists": tuple(fields["lists"])})

    def _classify(self, name: str) -> Classification:
        from harness.classify.organizations import domain_owner

        if _is_address(name):
            return classify_ip(name)
        if not _HOST.match(name):
            return Classification(name, None, None, "unknown", "other", False, note="not a host name")
        endpoint = self._endpoint(name)
        hits = filter_hits(name, endpoint.paths if endpoint else ())
        owner = domain_owner(name)
        lists = ([endpoint.list_name] if endpoint else []) + list(hits) + ([ORGANIZATIONS] if owner else [])
        category = _category(endpoint, hits, owner.category if owner else None)
        domain = registrable_domain(name)
        party = _party(endpoint, owner.owner if owner else None, domain, name)
        return Classification(
            name=name,
            registrable_domain=domain,
            organization=owner.organization if owner else None,
            party=party,
            category=category,
            ad_or_tracking=bool(hits) or category in AD_OR_TRACKING,
            lists=tuple(lists),
            owner=owner.owner if owner else None,
            note=endpoint.note if endpoint else "",
        )

    def _endpoint(self, name: str) -> EndpointMatch | None:
        for endpoint_list in self.lists:
            found = endpoint_list.match(name)
            if found is not None:
                return found
        return None


def _category(endpoint: EndpointMatch | None, hits: tuple[str, ...], domain_category: Category | None) -> Category:
    if endpoint is not None:
        return endpoint.category
    if EASYLIST in hits:
        return "advertising"
    if EASYPRIVACY in hits:
        return "tracking"
    return domain_category or "other"


def _party(endpoint: EndpointMatch | None, owner: str | None, domain: str | None, name: str) -> Party:
    if endpoint is not None and endpoint.party is not None:
        return endpoint.party
    if domain is None:
        return "unknown"
    if under_private_suffix(name):
        # A customer's name on shared hosting (CloudFront, S3, ...): the host is not the party.
        return "unknown"
    return "platform" if owner == PLATFORM_OWNER else "third_party"


def _under_any(name: str, domains: Iterable[str]) -> bool:
    for domain in domains:
        domain = domain.strip().rstrip(".").lower()
        if domain and (name == domain or name.endswith("." + domain)):
            return True
    return False


def _is_address(name: str) -> bool:
    if ":" not in name and not name.replace(".", "").isdigit():
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _replace(result: Classification, party: Party) -> Classification:
    return Classification(
        result.name,
        result.registrable_domain,
        result.organization,
        party,
        result.category,
        result.ad_or_tracking,
        result.lists,
        result.owner,
        result.note,
    )


def classify_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> Classification:
    """Classify an endpoint known only by its address: no shipped address list, so party unknown.

    Raises ValueError for something that is not an IP address.
    """
    address = ipaddress.ip_address(ip)
    note = "local or special-purpose address" if not address.is_global else ""
    return Classification(str(address), None, None, "unknown", "other", False, note=note)


@lru_cache(maxsize=8)
def _classifier(extra_lists: tuple[str | Path, ...], from_env: str) -> Classifier:
    return Classifier([*extra_lists, *(p for p in from_env.split(os.pathsep) if p)])


def classifier(extra_lists: Iterable[str | Path] | None = None) -> Classifier:
    """The shared Classifier for ``extra_lists`` plus the lists named in ``$HARNESS_ENDPOINTS``
    (paths separated by the OS path separator); user lists are tried before the shipped one."""
    return _classifier(tuple(extra_lists or ()), os.environ.get(ENDPOINTS_ENV, ""))


def classify_name(
    name: str,
    skill_domains: Iterable[str] | None = None,
    extra_lists: Iterable[str | Path] | None = None,
) -> Classification:
    """Classify one host name (cached). See :class:`Classification` for the fields.

    ``skill_domains``: domains a skill declares as its endpoints (those names become
    skill_vendor). ``extra_lists``: user endpoint-list YAML files, tried before the shipped list.
    Raises InputError when a user list is malformed.
    """
    return classifier(extra_lists).classify_name(name, skill_domains or ())
