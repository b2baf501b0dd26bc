"""Capture targets: a local interface (``eth0``) or one on another host (``ssh://user@host/IFACE``)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from harness.errors import DeviceError, HarnessError

# Linux interface names: at most 15 bytes, no '/', no whitespace; we also refuse a leading '-'
# so a name can never be read as an option.
_IFACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,14}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
# ssh://[user@]host[:port]/IFACE, host an IPv6 address in brackets or anything without ':/@[]'.
_SSH_URL = re.compile(
    r"^ssh://(?:(?P<user>[^@/]*)@)?(?:\[(?P<ipv6>[^\]/]*)\]|(?P<host>[^:/@\[\]]*))(?::(?P<port>[^/]*))?/(?P<iface>.*)$"
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True, slots=True)
class SshTarget:
    """A host reached with OpenSSH (key authentication, no prompts)."""

    user: str | None
    host: str
    port: int | None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    """Where to capture: ``interface`` on this machine, or on ``ssh`` when set."""

    interface: str
    ssh: SshTarget | None = None

    def __str__(self) -> str:
        if self.ssh is None:
            return self.interface
        port = f":{self.ssh.port}" if self.ssh.port else ""
        host = f"[{self.ssh.host}]" if ":" in self.ssh.host else self.ssh.host
        user = f"{self.ssh.user}@" if self.ssh.user else ""
        return f"ssh://{user}{host}{port}/{self.interface}"


def parse_capture_spec(spec: str) -> CaptureSpec:
    """Parse and validate ``IFACE`` or ``ssh://[user@]host[:port]/IFACE`` (raises HarnessError).

    ``host`` is a name, an IPv4 address or an IPv6 address in brackets (``[fe80::1%eth0]``).
    """
    if not spec.startswith("ssh://"):
        return CaptureSpec(check_interface_name(spec))
    parts = _SSH_URL.match(spec)
    if parts is None:
        raise HarnessError(f"capture target {spec!r}: expected ssh://user@host[:port]/IFACE (an IPv6 host in brackets)")
    user, port = parts["user"], parts["port"]
    if user is not None and not _USER.match(user):
        raise HarnessError(f"capture target {spec!r}: not a user name: {user!r}")
    if parts["ipv6"] is not None:
        host = _ipv6_host(spec, parts["ipv6"])
    elif parts["host"] and _valid_host(parts["host"]):
        host = parts["host"]
    else:
        raise HarnessError(f"capture target {spec!r}: not a host name or address: {parts['host']!r}")
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise HarnessError(f"capture target {spec!r}: not a port number (1-65535): {port!r}")
    return CaptureSpec(check_interface_name(parts["iface"]), SshTarget(user, host, int(port) if port else None))


def _ipv6_host(spec: str, text: str) -> str:
    address, _, zone = text.partition("%")
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise HarnessError(f"capture target {spec!r}: not an IPv6 address: {text!r}") from None
    if zone and not _IFACE.match(zone):
        raise HarnessError(f"capture target {spec!r}: not an interface name after '%': {zone!r}")
    return text


def check_interface_name(name: str) -> str:
    """Return ``name`` if it is a well-formed interface name, else raise HarnessError."""
    if not _IFACE.match(name):
        raise HarnessError(f"not an interface name: {name!r} (letters, digits, '_.:+-', at most 15)")
    return name


def check_local_interface(name: str) -> str:
    """Return ``name`` if this machine has that interface (or it is ``any``), else raise DeviceError."""
    check_interface_name(name)
    if name == "any":
        return name
    try:
        socket.if_nametoindex(name)
    except OSError:
        known = ", ".join(sorted(n for _, n in socket.if_nameindex()))
        raise DeviceError(f"no network interface {name!r} here (have: {known})") from None
    return name


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))
