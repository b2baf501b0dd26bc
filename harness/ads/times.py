"""Instants as crawlers and recorders write them (ISO 8601 or epoch seconds) -> UTC epoch ns."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(T|\s|^)(\d{1,2}:\d{2}:\d{2})[.,](\d+)")
# Epoch seconds beyond this (year 5138) are almost surely milliseconds or microseconds.
_MAX_EPOCH_S = 10**11


def to_epoch_ns(value: object) -> int:
    """Convert an ISO 8601 string with a UTC offset, or epoch seconds (number or numeric string),
    to integer nanoseconds since 1970-01-01 UTC, exactly (no float rounding).

    Raises ``ValueError`` with a message fit for the user for anything else, including an ISO
    time without an offset (local or UTC cannot be told apart, and a guess would shift
    before/after splits by hours).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float | Decimal):
        return _seconds_to_ns(Decimal(repr(value)) if isinstance(value, float) else Decimal(value))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    try:
        return _seconds_to_ns(Decimal(text))
    except InvalidOperation:
        pass
    return _iso_to_ns(text)


def _seconds_to_ns(seconds: Decimal) -> int:
    if not seconds.is_finite() or abs(seconds) >= _MAX_EPOCH_S:
        raise ValueError(f"epoch seconds out of range: {seconds} (milliseconds? give seconds)")
    return int((seconds * 1_000_000_000).to_integral_value())


def _iso_to_ns(text: str) -> int:
    # datetime keeps microseconds only: take the fraction out and add it back as nanoseconds.
    fraction_ns = 0
    match = _FRACTION.search(text)
    if match:
        digits = match.group(3)
        fraction_ns = int((digits + "000000000")[:9])
        text = text[: match.start(3) - 1] + text[match.end(3) :]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or epoch seconds: {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"time has no UTC offset (add Z or +HH:MM): {text!r}")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + fraction_ns
