"""Audio for the bench: devices, sample-accurate playback, listening for answers, the lab.

Two back ends behind one interface, chosen by name: ``sounddevice`` (default) and
``pyaudio``. Both talk to PortAudio; which devices PortAudio sees is fixed when it starts, so
the virtual lab's environment is applied before the first back end is opened.
"""

from __future__ import annotations

import os

from harness.audio.backend import DEFAULT_LATENCY_S, AudioBackend, DeviceLost, PlaybackTiming, PlayControl
from harness.audio.devices import DeviceInfo, Kind, match_device
from harness.audio.lab import apply_lab_environment, lab_down, lab_environment, lab_status, lab_up
from harness.audio.listen import (
    Answer,
    Capture,
    Limits,
    ListenSettings,
    Recording,
    calibrate_noise,
    listen,
    record,
    same_answer,
)
from harness.audio.vad import NoiseFloor
from harness.errors import DeviceError

BACKENDS = ("sounddevice", "pyaudio")
DEFAULT_BACKEND = "sounddevice"

_open: dict[str, tuple[AudioBackend, tuple[str, str]]] = {}


def _environment_key() -> tuple[str, str]:
    return os.environ.get("PULSE_SERVER", ""), os.environ.get("ALSA_CONFIG_PATH", "")


def open_backend(name: str = DEFAULT_BACKEND) -> AudioBackend:
    """The back end called ``name``, PortAudio initialised for the current environment.

    Re-initialises PortAudio when the audio environment (PULSE_SERVER, ALSA_CONFIG_PATH)
    changed since it was opened, so a lab started later is seen.
    """
    if name not in BACKENDS:
        raise DeviceError(f"unknown audio back end {name!r}; choose one of: {', '.join(BACKENDS)}")
    apply_lab_environment()
    key = _environment_key()
    if name in _open:
        backend, opened_for = _open[name]
        if opened_for != key:
            backend.reset()
            _open[name] = (backend, key)
        return backend
    try:
        if name == "sounddevice":
            from harness.audio.sounddevice_backend import SounddeviceBackend as cls
        else:
            from harness.audio.pyaudio_backend import PyAudioBackend as cls
        backend = cls()
    except (ImportError, OSError) as exc:
        raise DeviceError(f"audio back end {name!r} is unavailable: {exc}") from None
    _open[name] = (backend, key)
    return backend


def list_devices(backend: str = DEFAULT_BACKEND) -> list[DeviceInfo]:
    """Every device PortAudio knows through ``backend``."""
    return open_backend(backend).devices()


def device_advice() -> str:
    """What to do when the devices a bench needs are not there: start the virtual lab when none
    runs, and how to see what PortAudio's probe of the sound cards found."""
    card = (
        "check that PortAudio sees your sound card "
        "(`aplay -l`; `harness devices --backend pyaudio -v` shows what ALSA and JACK reported)"
    )
    if lab_status().running:
        return f"the virtual lab is running (`harness lab status`) but not seen by this process; {card}"
    return f"start the virtual lab with `harness lab up`, or {card}"


def resolve_device(spec: str | int, kind: Kind, backend: str = DEFAULT_BACKEND) -> DeviceInfo:
    """The device ``spec`` names (index; exact name; unique case-insensitive substring).

    Raises DeviceError listing the close names and the candidates when none or several match,
    suggesting the virtual lab when there are no devices or neither it nor another sound server
    is in use.
    """
    devices = list_devices(backend)
    try:
        return match_device(devices, spec, kind)
    except DeviceError as exc:
        if devices and (os.environ.get("PULSE_SERVER") or lab_status().running):
            raise  # a sound server is in use: the listing says what it has
        raise DeviceError(f"{exc}; {device_advice()}") from None


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_LATENCY_S",
    "Answer",
    "AudioBackend",
    "Capture",
    "Limits",
    "Recording",
    "DeviceError",
    "DeviceInfo",
    "DeviceLost",
    "ListenSettings",
    "NoiseFloor",
    "PlaybackTiming",
    "PlayControl",
    "calibrate_noise",
    "device_advice",
    "lab_down",
    "lab_environment",
    "lab_status",
    "lab_up",
    "list_devices",
    "listen",
    "open_backend",
    "record",
    "resolve_device",
    "same_answer",
]
