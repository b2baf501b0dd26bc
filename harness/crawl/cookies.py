"""Cookie strings as the browser saw them (a ``Set-Cookie`` value, a ``document.cookie`` write,
a jar entry) turned into the fields of :class:`~harness.crawl.records.CookieWrite`."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any


def parse_cookie(text: str, host: str, now_ns: int | None = None) -> dict[str, Any] | None:
    """Name, value and attributes of one cookie string; None when it names no cookie.

    ``host`` is the domain when the string names none (a host-only cookie). ``Max-Age`` wins over
    ``Expires`` as in RFC 6265; an unreadable date leaves the expiry unknown (None).
    """
    first, *attributes = text.split(";")
    name, sep, value = first.partition("=")
    if not sep:
        name, value = "", name  # RFC 6265bis: a nameless cookie
    name, value = name.strip(), value.strip()
    if not name and not value:
        return None
    cookie: dict[str, Any] = {"domain": host, "name": name, "value": value, "path": "/", "expires_ns": None}
    cookie |= {"http_only": False, "secure": False, "same_site": ""}
    max_age: int | None = None
    for attribute in attributes:
        key, _, arg = attribute.partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key == "domain" and arg:
            cookie["domain"] = arg.lstrip(".").lower()
        elif key == "path" and arg.startswith("/"):
            cookie["path"] = arg
        elif key == "expires" and cookie["expires_ns"] is None:
            cookie["expires_ns"] = _date_ns(arg)
        elif key == "max-age":
            try:
                max_age = int(arg)
            except ValueError:
                pass
        elif key == "httponly":
            cookie["http_only"] = True
        elif key == "secure":
            cookie["secure"] = True
        elif key == "samesite":
            cookie["same_site"] = arg
    if max_age is not None:
        cookie["expires_ns"] = (time.time_ns() if now_ns is None else now_ns) + max_age * 1_000_000_000
    return cookie


def jar_cookie(entry: dict[str, Any]) -> dict[str, Any]:
    """A cookie of Playwright's ``context.cookies()`` as CookieWrite fields."""
    expires = entry.get("expires", -1)
    return {
        "domain": str(entry.get("domain", "")).lstrip("."),
        "name": entry.get("name", ""),
        "value": entry.get("value", ""),
        "path": entry.get("path", "/"),
        "expires_ns": int(expires * 1e9) if expires and expires > 0 else None,
        "http_only": bool(entry.get("httpOnly")),
        "secure": bool(entry.get("secure")),
        "same_site": entry.get("sameSite", ""),
    }


def _date_ns(text: str) -> int | None:
    try:
        return int(parsedate_to_datetime(text).timestamp() * 1e9)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
