"""BPF capture filters: one for a device's MAC or IP address, user filters checked by tcpdump."""

from __future__ import annotations

import ipaddress
import re
import subprocess

from harness.errors import HarnessError, ToolMissing

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")
_CHECK_TIMEOUT_S = 10.0


def device_filter(device: str) -> str:
    """``ether host MAC`` or ``host IP`` for a device given by MAC (``aa:bb:..``/``aa-bb-..``) or IP."""
    device = device.strip()
    if _MAC.match(device):
        return f"ether host {device.replace('-', ':').lower()}"
    try:
        return f"host {ipaddress.ip_address(device)}"
    except ValueError:
        raise HarnessError(f"device {device!r} is neither a MAC address nor an IP address") from None


def combine_filters(device: str | None, bpf: str | None) -> str | None:
    """The capture filter: the device's, the user's, or both joined with ``and``."""
    parts = [f"({p})" for p in (device_filter(device) if device else None, bpf) if p and p.strip()]
    if not parts:
        return None
    return parts[0][1:-1] if len(parts) == 1 else " and ".join(parts)


def check_filter(expression: str, interface: str | None = None, tcpdump: str = "tcpdump") -> str:
    """Return ``expression`` if tcpdump compiles it (``tcpdump -d``), else raise HarnessError.

    With ``interface`` it is compiled for that interface's link type, otherwise for Ethernet;
    tcpdump opens the interface for that, so an empty ``expression`` checks that this user may
    capture there.
    """
    if "\x00" in expression or "\n" in expression:
        raise HarnessError(f"capture filter {expression!r}: control characters are not allowed")
    argv = [tcpdump, "-d"] + (["-i", interface] if interface else ["-y", "EN10MB"]) + ["--", expression]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_CHECK_TIMEOUT_S)
    except FileNotFoundError:
        raise ToolMissing("tcpdump is not installed (apt-get install tcpdump)") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["rejected"])[-1].removeprefix("tcpdump: ")
        raise HarnessError(
            f"capture filter {expression!r}: {detail}" if expression else f"capture on {interface}: {detail}"
        )
    return expression
