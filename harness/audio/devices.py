"""Audio devices as PortAudio lists them, and choosing one by index or by name."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from harness.errors import DeviceError

Kind = Literal["output", "input"]


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device; ``index`` is valid for the back end that listed it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False

    def channels(self, kind: Kind) -> int:
        return self.max_output_channels if kind == "output" else self.max_input_channels


def match_device(devices: list[DeviceInfo], spec: str | int, kind: Kind) -> DeviceInfo:
    """Pick the device ``spec`` names: an index, else an exact name, else a unique
    case-insensitive substring, among devices with channels of ``kind``.

    Raises DeviceError listing the candidates when nothing or several devices match.
    """
    usable = [d for d in devices if d.channels(kind) > 0]
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        index = int(text)
        for device in usable:
            if device.index == index:
                return device
        raise DeviceError(f"no {kind} device with index {index}; {kind} devices: {_listing(usable)}")
    exact = [d for d in usable if d.name == text]
    if len(exact) == 1:
        return exact[0]
    found = exact or [d for d in usable if text.lower() in d.name.lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DeviceError(
            f"no {kind} device matches {text!r}; {_close(usable, text)}{kind} devices: {_listing(usable)}"
        )
    raise DeviceError(f"{kind} device {text!r} is ambiguous; it matches: {_listing(found)}")


def _close(devices: list[DeviceInfo], text: str) -> str:
    """``did you mean ...? `` naming the devices whose names are close to ``text`` (or nothing)."""
    names = {d.name.lower(): d for d in devices}
    close = [names[n] for n in difflib.get_close_matches(text.lower(), names, n=3, cutoff=0.5)]
    return f"did you mean {' or '.join(repr(d.name) for d in close)}? " if close else ""


def _listing(devices: list[DeviceInfo]) -> str:
    return ", ".join(f"[{d.index}] {d.name}" for d in devices) or "(none)"
