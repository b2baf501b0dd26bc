"""Registrable domains from the public-suffix list bundled with ``publicsuffixlist`` (never fetched)."""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList

from harness.classify.memo import Memo

MEMO = Memo("shared-hosting")


@cache
def _full() -> PublicSuffixList:
    # accept_unknown=False: a name under an unlisted TLD (router.lan) has no registrable domain.
    return PublicSuffixList(accept_unknown=False)


@cache
def _icann() -> PublicSuffixList:
    return PublicSuffixList(accept_unknown=False, only_icann=True)


def registrable_domain(name: str) -> str | None:
    """The public suffix plus one label, private suffixes included (``x.s3.amazonaws.com``)."""
    return _full().privatesuffix(name)


def under_private_suffix(name: str) -> bool:
    """True when the name sits under a private suffix (shared hosting such as ``cloudfront.net``).

    Such names belong to the hosting company's customers, not to the hosting company.
    """
    return MEMO.get(name, _private)


def _private(name: str) -> bool:
    return _full().publicsuffix(name) != _icann().publicsuffix(name)
