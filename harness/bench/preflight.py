"""What a dry run checks before a bench would start: the devices, the capture target, the marker.

Each check looks without acting: devices are listed (no stream is opened), tcpdump compiles the
filter on the interface (nothing is captured), the marker's address is resolved (nothing is sent).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from harness.audio import Kind, resolve_device
from harness.bench.options import RunOptions
from harness.capture import check_capture
from harness.defaults import default
from harness.errors import HarnessError


@dataclass(frozen=True)
class Check:
    """One thing a run needs: ``what`` it is, whether it is ``ok``, and what was found."""

    what: str
    ok: bool
    detail: str


def _device(options: RunOptions, kind: Kind, spec: str | None) -> Check:
    if spec is None:
        if kind == "input":
            return Check("input device", True, "none: answers are not recorded")
        return Check("output device", False, "not given (--output-device)")
    backend = options.backend or default.backend
    try:
        found = resolve_device(spec, kind, backend)
    except HarnessError as exc:
        return Check(f"{kind} device", False, str(exc))
    return Check(f"{kind} device", True, f"[{found.index}] {found.name} ({backend}, {found.hostapi})")


def _capture(options: RunOptions) -> Check:
    if options.capture is None:
        return Check("capture", True, "none (--capture not given)")
    try:
        spec = check_capture(options.capture, options.capture_device, options.capture_filter)
    except HarnessError as exc:
        return Check("capture", False, str(exc))
    where = (
        "tcpdump present; the interface exists and may be captured on"
        if spec.ssh is None
        else (f"tcpdump over ssh to {spec.ssh.destination} (the host is not contacted by a dry run)")
    )
    return Check("capture", True, f"{spec}: {where}")


def _marker(options: RunOptions) -> Check:
    if options.marker is None:
        return Check("marker", True, "none (--marker not given)")
    host, port = options.marker
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        return Check("marker", False, f"{host}:{port}: cannot resolve {host!r}: {exc}")
    return Check("marker", True, f"{host}:{port} -> {found[0][4][0]} (UDP; nothing sent)")


def preflight(options: RunOptions) -> list[Check]:
    """The checks of a run with ``options`` (a twin run brings its own lab, devices and capture)."""
    if options.twin:
        return [
            Check("devices and capture", True, "the twin's: the virtual lab and a capture are started by the run"),
            _marker(options),
        ]
    return [
        _device(options, "output", options.output_device),
        _device(options, "input", options.input_device),
        _capture(options),
        _marker(options),
    ]
