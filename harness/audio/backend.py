"""The interface every audio back end implements, and timed playback on top of it.

A back end only opens PortAudio callback streams (:class:`Stream`); playing a sound, waiting
for it to leave the speaker and turning callback times into wall-clock instants is done
here once for all back ends.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from harness.audio.clock import Callback, ClockMap, better_clock, measure_clock, settled, time_of_frame
from harness.audio.devices import DeviceInfo, Kind, match_device
from harness.errors import DeviceError

# Output latency asked of PortAudio: long enough that a loaded two-core host does not underrun.
DEFAULT_LATENCY_S = 0.1
# A stream that makes no progress for this long (beyond its latency) has lost its device.
STALL_S = 2.0
# How much slower than nominal a device clock may run: play() waits this share of the sound
# past the last sample's estimated DAC time before closing the stream (which drops its buffer).
DRIFT_ALLOWANCE = 1e-4


@dataclass(frozen=True)
class PlaybackTiming:
    """When a sound was really played: first and last sample at the DAC.

    Instants are integers: UTC epoch ns (``*_wall_ns``) and ``time.monotonic_ns`` (``*_mono_ns``).
    ``frames`` is the number of frames played: all of them unless ``complete`` is false (the
    device was lost; frames handed over) or ``stopped`` is true (cut by :class:`PlayControl`;
    the end is then the last sample before the cut, and both instants are None when the cut
    came before the first sample). ``stream_clock_offset_ns`` is wall minus stream clock as
    measured (about 0 on ALSA).
    """

    onset_wall_ns: int | None
    end_wall_ns: int | None
    onset_mono_ns: int | None
    end_mono_ns: int | None
    latency_s: float
    device: DeviceInfo
    sample_rate: int
    frames: int
    backend: str
    complete: bool = True
    underflows: int = 0
    stream_clock_offset_ns: int = 0
    stopped: bool = False


def _unity() -> float:
    return 1.0


@dataclass(frozen=True)
class PlayControl:
    """Steers a sound while :meth:`AudioBackend.play` plays it, from any thread.

    ``gain()`` scales each block as the audio thread renders it; setting ``stop`` cuts the
    sound at the next block. Either is heard about one output latency later, as what was
    already queued plays out first.
    """

    stop: threading.Event = field(default_factory=threading.Event)
    gain: Callable[[], float] = _unity


class DeviceLost(DeviceError):
    """The device went away while a stream was running; ``timing`` says how far playback got."""

    def __init__(self, message: str, device: DeviceInfo, timing: PlaybackTiming | None = None) -> None:
        super().__init__(message)
        self.device = device
        self.timing = timing


class Stream(Protocol):
    """A started-on-demand PortAudio callback stream, as a back end wraps it."""

    latency_s: float

    def start(self) -> None: ...
    def stream_time(self) -> float: ...
    def is_active(self) -> bool: ...
    def close(self) -> None: ...


# render(frames, dac_time, current_time, flagged) -> (block of `frames` float32, is_last)
Render = Callable[[int, float, float, bool], tuple[np.ndarray, bool]]
# deliver(block, adc_time, current_time, flagged)
Deliver = Callable[[np.ndarray, float, float, bool], None]


class AudioBackend(ABC):
    """One PortAudio binding. Use :func:`harness.audio.open_backend` to get one."""

    name: str

    @abstractmethod
    def devices(self) -> list[DeviceInfo]:
        """Every device PortAudio knows, as this binding numbers them."""

    @abstractmethod
    def open_output(self, device: DeviceInfo, rate: int, render: Render, latency_s: float) -> Stream:
        """A mono float32 output stream calling ``render`` from the audio thread."""

    @abstractmethod
    def open_input(self, device: DeviceInfo, rate: int, deliver: Deliver, latency_s: float) -> Stream:
        """A mono float32 input stream calling ``deliver`` from the audio thread."""

    @abstractmethod
    def reset(self) -> None:
        """Re-initialise PortAudio so that devices that (re)appeared are seen; closes streams."""

    def resolve(self, spec: str | int, kind: Kind) -> DeviceInfo:
        return match_device(self.devices(), spec, kind)

    def play(
        self,
        samples: np.ndarray,
        rate: int,
        device: DeviceInfo,
        on_onset: Callable[[int], None] | None = None,
        latency_s: float = DEFAULT_LATENCY_S,
        control: PlayControl | None = None,
    ) -> PlaybackTiming:
        """Play mono ``samples`` and return once the last one has left the DAC.

        ``on_onset(onset_wall_ns)`` is called from this thread as soon as the onset is known
        (shortly after it, typically); later callbacks may refine the returned onset by well
        under a millisecond. ``control`` changes the gain or cuts the sound while it plays.
        Raises :class:`DeviceLost` if the device disappears.
        """
        samples = np.ascontiguousarray(samples, dtype=np.float32).ravel()
        return _Playback(self, samples, rate, device, control or PlayControl()).run(on_onset, latency_s)


class _Playback:
    """State shared between the audio thread (``render``) and the calling thread."""

    def __init__(
        self, backend: AudioBackend, samples: np.ndarray, rate: int, device: DeviceInfo, control: PlayControl
    ) -> None:
        self.backend, self.samples, self.rate, self.device, self.control = backend, samples, rate, device, control
        self.position = 0
        self.cut_at: int | None = None
        self.callbacks: list[Callback] = []
        self.underflows = 0
        self.delivered_all = threading.Event()

    def render(self, frames: int, dac: float, now: float, flagged: bool) -> tuple[np.ndarray, bool]:
        self.callbacks.append(Callback(dac, now, self.position, frames, flagged))
        self.underflows += flagged
        block = np.zeros(frames, dtype=np.float32)
        if self.cut_at is None and self.control.stop.is_set():
            self.cut_at = min(self.position, len(self.samples))
        if self.cut_at is None:
            chunk = self.samples[self.position : self.position + frames]
            block[: len(chunk)] = chunk * self.control.gain()
        self.position += frames
        if self.position >= len(self.samples) or self.cut_at is not None:
            self.delivered_all.set()
        # Never end the stream from here: PortAudio would drop what is still buffered
        # (seen: the last ~latency of a sound lost). Silence follows until run() closes it.
        return block, False

    def run(self, on_onset: Callable[[int], None] | None, latency_s: float) -> PlaybackTiming:
        stream = self.backend.open_output(self.device, self.rate, self.render, latency_s)
        clock: ClockMap | None = None
        onset: int | None = None
        try:
            try:
                stream.start()
                clock = measure_clock(stream.stream_time)
            except Exception as exc:
                raise DeviceLost(f"output device {self.device.name!r} failed to start: {exc}", self.device) from None
            last_progress, seen = time.monotonic(), 0
            while True:
                if not stream.is_active() or time.monotonic() - last_progress > STALL_S + stream.latency_s:
                    raise DeviceLost(
                        f"output device {self.device.name!r} was lost after "
                        f"{min(self.position, len(self.samples)) / self.rate:.2f} s of "
                        f"{len(self.samples) / self.rate:.2f} s",
                        self.device,
                        self._timing(clock, stream.latency_s, complete=False),
                    )
                if len(self.callbacks) != seen:
                    seen, last_progress = len(self.callbacks), time.monotonic()
                if self.delivered_all.is_set() and self.played == 0:
                    break  # stopped before the first sample: nothing to wait for
                if onset is None and settled(self.callbacks, self.rate):
                    onset = clock.wall_ns(time_of_frame(self.callbacks, 0, self.rate))
                    if on_onset is not None:
                        on_onset(onset)
                if onset is not None and self.delivered_all.is_set():
                    # Wait for the last sample to leave the DAC, re-estimating as callbacks come.
                    last = clock.wall_ns(time_of_frame(self.callbacks, self.played - 1, self.rate))
                    remaining = last + int(DRIFT_ALLOWANCE * self.played / self.rate * 1e9) - time.time_ns()
                    if remaining <= 0:
                        break
                    time.sleep(min(remaining / 1e9, 0.005))
                else:
                    time.sleep(0.005)
            clock = better_clock(clock, measure_clock(stream.stream_time))
            return self._timing(clock, stream.latency_s, complete=True)
        finally:
            try:
                stream.close()
            except Exception:  # closing a stream whose server died can fail; nothing to save
                pass

    @property
    def played(self) -> int:
        """Frames of the sound played (or, until it is all handed over, to be played)."""
        return len(self.samples) if self.cut_at is None else self.cut_at

    def _timing(self, clock: ClockMap | None, latency_s: float, complete: bool) -> PlaybackTiming:
        onset = end = None
        if clock is not None and self.callbacks and self.played > 0:
            onset = clock.wall_ns(time_of_frame(self.callbacks, 0, self.rate))
            if complete:
                end = clock.wall_ns(time_of_frame(self.callbacks, self.played - 1, self.rate))
        to_mono = (lambda ns: None if ns is None else clock.mono_ns(ns)) if clock else (lambda ns: None)
        return PlaybackTiming(
            onset_wall_ns=onset,
            end_wall_ns=end,
            onset_mono_ns=to_mono(onset),
            end_mono_ns=to_mono(end),
            latency_s=latency_s,
            device=self.device,
            sample_rate=self.rate,
            frames=min(self.position, self.played) if not complete else self.played,
            backend=self.backend.name,
            complete=complete,
            underflows=self.underflows,
            stream_clock_offset_ns=clock.stream_to_wall_ns if clock else 0,
            stopped=self.cut_at is not None,
        )
