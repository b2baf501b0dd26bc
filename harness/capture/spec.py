"""Capture targets: a local interface (``eth0``) or one on another host (``ssh://user@host/IFACE``)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.errors import DeviceError, HarnessError

# Linux interface names: at most 15 bytes, no '/', no whitespace; we also refuse a leading '-'
# so a name can never be read as an option.
_IFACE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,14}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


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
        return f"ssh://{self.ssh.destination}{port}/{self.interface}"


def parse_capture_spec(spec: str) -> CaptureSpec:
    """Parse and validate ``IFACE`` or ``ssh://[user@]host[:port]/IFACE`` (raises HarnessError)."""
    if not spec.startswith("ssh://"):
        return CaptureSpec(check_interface_name(spec))
    parts = urlsplit(spec)
    interface = parts.path.removeprefix("/")
    if parts.query or parts.fragment or parts.password is not None:
        raise HarnessError(f"capture target {spec!r}: expected ssh://user@host[:port]/IFACE")
    try:
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise HarnessError(f"capture target {spec!r}: {exc}") from None
    if not host or not _valid_host(host):
        raise HarnessError(f"capture target {spec!r}: not a host name or address: {host!r}")
    user = parts.username
    if user is not None and not _USER.match(user):
        raise HarnessError(f"capture target {spec!r}: not a user name: {user!r}")
    return CaptureSpec(check_interface_name(interface), SshTarget(user, host, port))


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
