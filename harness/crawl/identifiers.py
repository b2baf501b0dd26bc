"""Identifier-like values: which pieces of a cookie, a storage value or a URL could name a user.

A value is decoded (percent-decoding repeated until stable) and split into tokens on the
delimiters composite values use (``& = | : . , ;``, whitespace, quotes, brackets, ``/ ? #``).
A token is identifier-like when :func:`why_not` finds no reason against it:

- ``short``: fewer than :data:`MIN_LENGTH` characters;
- ``low entropy``: Shannon entropy of its characters below :data:`MIN_ENTROPY` bits per character;
- ``word``: letters (and ``-``/``_``) of one case or a CamelCase word, or a common token
  (true, false, undefined, null, ...) — UUIDs and other ids with digits are kept;
- ``timestamp``: a number that read as epoch seconds, milliseconds, microseconds or nanoseconds,
  or as a compact date (yyyymmdd[hhmm[ss]]), lies within :data:`TIMESTAMP_WINDOW_NS` of the time
  it was seen. ISO 8601 dates are removed from a value before it is split.

Which tokens a caller passes here is its business (page URL values and constants shared by
personas are excluded by :mod:`harness.crawl.sync`, which knows the crawl).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

#: Shortest identifier, in characters (Acar et al. 2014 used 8; 10 keeps short codes out).
MIN_LENGTH = 10
#: Least Shannon entropy of a token's characters, bits per character. Random ids of 10+
#: characters stay above it (hex 99.9%, decimal ~97%); repeated patterns (``0101010101``: 1.0)
#: and counters (``0000000001``: 0.47) fall below.
MIN_ENTROPY = 2.0
#: How far from the moment a number was seen it may lie and still be taken for a timestamp.
TIMESTAMP_WINDOW_NS = 2 * 366 * 86_400 * 10**9

_DELIMITERS = re.compile(r"""[&=|:.,;\s"'{}\[\]()<>/?#\\]+""")
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?", re.IGNORECASE
)
# Possessive quantifiers: no backtracking on long hostile tokens.
_WORD = re.compile(r"[a-z_\-]++|[A-Z_\-]++|(?:[A-Z]?[a-z]++[_\-]?)++")
_NUMBER = re.compile(r"\d+")
_COMMON = frozenset({"true", "false", "undefined", "null", "none", "nan", "infinity", "object", "function"})
_EPOCH_SCALES_NS = (10**9, 10**6, 10**3, 1)
_COMPACT_DATES = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


def decode(value: str, rounds: int = 3) -> str:
    """``value`` percent-decoded until it no longer changes (at most ``rounds`` times)."""
    for _ in range(rounds):
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


def tokens(value: str) -> set[str]:
    """The tokens of a value (cookie, storage, body, query value): decoded, ISO dates taken out,
    split on delimiters."""
    text = _ISO_DATE.sub(" ", decode(value))
    return {token for token in _DELIMITERS.split(text) if token}


def url_tokens(url: str) -> set[str]:
    """The tokens of a URL's path, query and fragment (never its host: names are not ids)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return tokens(url)
    return tokens(parts.path) | tokens(parts.query) | tokens(parts.fragment)


def entropy(token: str) -> float:
    """Shannon entropy of the characters of ``token``, in bits per character."""
    counts = Counter(token)
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def why_not(token: str, seen_ns: int) -> str | None:
    """Why ``token`` (seen at UTC epoch ns ``seen_ns``) is not identifier-like, or None if it is."""
    if len(token) < MIN_LENGTH:
        return "short"
    if token.lower() in _COMMON or _WORD.fullmatch(token):
        return "word"
    if _NUMBER.fullmatch(token) and _is_timestamp(token, seen_ns):
        return "timestamp"
    if entropy(token) < MIN_ENTROPY:
        return "low entropy"
    return None


def _is_timestamp(digits: str, seen_ns: int) -> bool:
    number = int(digits)
    if any(abs(number * scale - seen_ns) <= TIMESTAMP_WINDOW_NS for scale in _EPOCH_SCALES_NS):
        return True
    layout = _COMPACT_DATES.get(len(digits))
    if layout is None:
        return False
    try:
        moment = datetime.strptime(digits, layout).replace(tzinfo=UTC)
    except ValueError:
        return False
    return abs(int(moment.timestamp()) * 10**9 - seen_ns) <= TIMESTAMP_WINDOW_NS
