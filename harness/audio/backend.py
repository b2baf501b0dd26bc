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
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from harness.audio.clock import Callback, ClockMap, better_clock, measure_clock, settled, time_of_frame
from harness.audio.devices import DeviceInfo, Kind, match_device
from harness.errors import DeviceError

# Output latency asked of PortAudio: long enough that a loaded two-core host does not underrun.
DEFAULT_LATENCY_S = 0.1
# A stream that makes no progress for this long (beyond its latency) has lost its device.
STALL_S = 2.0


@dataclass(frozen=True)
class PlaybackTiming:
    """When a sound was really played: first and last sample at the DAC.

    Instants are integers: UTC epoch ns (``*_wall_ns``) and ``time.monotonic_ns`` (``*_mono_ns``).
    ``frames`` is the number of frames handed to the device (all of them unless ``complete`` is
    false). ``stream_clock_offset_ns`` is wall minus stream clock as measured (about 0 on ALSA).
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
    ) -> PlaybackTiming:
        """Play mono ``samples`` and return once the last one has left the DAC.

        ``on_onset(onset_wall_ns)`` is called from this thread as soon as the onset is known
        (shortly after it, typically); the returned onset may be refined by later callbacks
        by a few microseconds. Raises :class:`DeviceLost` if the device disappears.
        """
        return _Playback(self, np.ascontiguousarray(samples, dtype=np.float32).ravel(), rate, device).run(
            on_onset, latency_s
        )


class _Playback:
    """State shared between the audio thread (``render``) and the calling thread."""

    def __init__(self, backend: AudioBackend, samples: np.ndarray, rate: int, device: DeviceInfo) -> None:
        self.backend, self.samples, self.rate, self.device = backend, samples, rate, device
        self.position = 0
        self.callbacks: list[Callback] = []
        self.underflows = 0
        self.delivered_all = threading.Event()

    def render(self, frames: int, dac: float, now: float, flagged: bool) -> tuple[np.ndarray, bool]:
        self.callbacks.append(Callback(dac, now, self.position, frames))
        self.underflows += flagged
        block = np.zeros(frames, dtype=np.float32)
        chunk = self.samples[self.position : self.position + frames]
        block[: len(chunk)] = chunk
        self.position += frames
        if self.position >= len(self.samples):
            self.delivered_all.set()
        # Never end the stream from here: PortAudio would drop what is still buffered
        # (seen: the last ~latency of a sound lost). Silence follows until run() closes it.
        return block, False

    def run(self, on_onset: Callable[[int], None] | None, latency_s: float) -> PlaybackTiming:
        stream = self.backend.open_output(self.device, self.rate, self.render, latency_s)
        clock: ClockMap | None = None
        onset: int | None = None
        last = max(len(self.samples) - 1, 0)
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
                if onset is None and settled(self.callbacks, self.rate):
                    onset = clock.wall_ns(time_of_frame(self.callbacks, 0, self.rate))
                    if on_onset is not None:
                        on_onset(onset)
                if onset is not None and self.delivered_all.is_set():
                    # Wait for the last sample to reach the DAC, re-estimating as callbacks come.
                    remaining = clock.wall_ns(time_of_frame(self.callbacks, last, self.rate)) - time.time_ns()
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

    def _timing(self, clock: ClockMap | None, latency_s: float, complete: bool) -> PlaybackTiming:
        onset = end = None
        if clock is not None and self.callbacks:
            onset = clock.wall_ns(time_of_frame(self.callbacks, 0, self.rate))
            if complete:
                end = clock.wall_ns(time_of_frame(self.callbacks, max(len(self.samples) - 1, 0), self.rate))
        to_mono = (lambda ns: None if ns is None else clock.mono_ns(ns)) if clock else (lambda ns: None)
        return PlaybackTiming(
            onset_wall_ns=onset,
            end_wall_ns=end,
            onset_mono_ns=to_mono(onset),
            end_mono_ns=to_mono(end),
            latency_s=latency_s,
            device=self.device,
            sample_rate=self.rate,
            frames=min(self.position, len(self.samples)) if not complete else len(self.samples),
            backend=self.backend.name,
            complete=complete,
            underflows=self.underflows,
            stream_clock_offset_ns=clock.stream_to_wall_ns if clock else 0,
        )

