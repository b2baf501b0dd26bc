"""HTTP/1 request lines: the Host header names the flow."""

from __future__ import annotations

METHODS = (b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN")
MAX_HEAD = 8192


def request_host(payload: bytes) -> str | None:
    """The Host of an HTTP request starting ``payload`` (port and trailing dot removed)."""
    head = payload[:MAX_HEAD]
    if head[:4] not in METHODS:
        return None
    for line in head.split(b"\r\n")[1:]:
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host = value.strip().decode("ascii", "replace").lower()
            if host.startswith("["):
                host = host[1 : host.find("]")] if "]" in host else host[1:]
            elif host.count(":") == 1:
                host = host.split(":")[0]
            return host.rstrip(".") or None
    return None
