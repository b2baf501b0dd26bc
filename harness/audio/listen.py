"""Recording from an input device with wall-clock sample times, and listening for an answer.

Sample ``i`` of a recording is placed in time from the input stream's ADC times (see
:mod:`harness.audio.clock`), so an answer's onset is as exact as the device reports it,
not as late as the Python thread that noticed it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from harness.audio.backend import DEFAULT_LATENCY_S, STALL_S, AudioBackend, DeviceLost, Stream
from harness.audio.clock import Callback, ClockMap, better_clock, measure_clock, time_of_frame
from harness.audio.devices import DeviceInfo
from harness.audio.vad import Endpointer, NoiseFloor, Outcome, envelope, noise_floor, similar_envelopes

POLL_S = 0.01


class ListenSettings(Protocol):
    """What :func:`listen` reads from a persona's session settings."""

    answer_timeout_s: float
    max_answer_s: float
    min_silence_s: float


@dataclass(frozen=True)
class Limits:
    """Plain :class:`ListenSettings` for callers without a persona."""

    answer_timeout_s: float = 8.0
    max_answer_s: float = 30.0
    min_silence_s: float = 1.0


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray
    rate: int
    started_wall_ns: int
    started_mono_ns: int


@dataclass(frozen=True)
class Answer:
    """What was heard after an utterance.

    ``samples`` is the whole recording, from ``started_wall_ns`` (its sample 0) to where
    listening stopped; ``onset_index``/``end_index`` locate the answer in it. Onset, end and
    duration are None for ``no_answer``; for ``too_long`` the end is the limit.
    """

    outcome: Outcome
    onset_wall_ns: int | None
    end_wall_ns: int | None
    duration_s: float | None
    samples: np.ndarray
    rate: int
    started_wall_ns: int
    onset_index: int | None = None
    end_index: int | None = None
    onset_mono_ns: int | None = None
    end_mono_ns: int | None = None

    def voice(self) -> np.ndarray:
        """The answer itself (empty for no answer)."""
        if self.onset_index is None or self.end_index is None:
            return self.samples[:0]
        return self.samples[self.onset_index : self.end_index + 1]


class Capture:
    """A running input stream that keeps every sample and can date any of them.

    Use as a context manager; :meth:`poll` moves what arrived into :attr:`samples`.
    """

    def __init__(
        self,
        backend: AudioBackend,
        device: DeviceInfo,
        rate: int,
        capacity_s: float,
        latency_s: float = DEFAULT_LATENCY_S,
    ) -> None:
        self.backend, self.device, self.rate, self.latency_s = backend, device, rate, latency_s
        self._buffer = np.zeros(int(capacity_s * rate) + rate, dtype=np.float32)
        self.length = 0
        self._inbox: list[np.ndarray] = []
        self.callbacks: list[Callback] = []
        self._received = 0
        self.clock: ClockMap | None = None
        self._stream: Stream | None = None
        self._last_progress = 0.0

    def _deliver(self, block: np.ndarray, adc: float, now: float, flagged: bool) -> None:
        self.callbacks.append(Callback(adc, now, self._received, len(block), flagged))
        self._received += len(block)
        self._inbox.append(block)

    def __enter__(self) -> Capture:
        self._stream = self.backend.open_input(self.device, self.rate, self._deliver, self.latency_s)
        try:
            self._stream.start()
            self.clock = measure_clock(self._stream.stream_time)
        except Exception as exc:
            self._stream.close()
            raise DeviceLost(f"input device {self.device.name!r} failed to start: {exc}", self.device) from None
        self._last_progress = time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        assert self._stream is not None
        try:
            if self.callbacks and self._stream.is_active():
                self.clock = better_clock(self.clock, measure_clock(self._stream.stream_time))
        finally:
            self._stream.close()

    @property
    def capacity(self) -> int:
        return len(self._buffer)

    @property
    def samples(self) -> np.ndarray:
        return self._buffer[: self.length]

    def poll(self) -> np.ndarray:
        """Take in what the audio thread delivered; raises DeviceLost when the stream died."""
        assert self._stream is not None
        count = len(self._inbox)
        for block in self._inbox[:count]:
            room = len(self._buffer) - self.length
            self._buffer[self.length : self.length + min(room, len(block))] = block[:room]
            self.length += min(room, len(block))
        del self._inbox[:count]
        now = time.monotonic()
        if count:
            self._last_progress = now
        elif not self._stream.is_active() or now - self._last_progress > STALL_S + self._stream.latency_s:
            raise DeviceLost(
                f"input device {self.device.name!r} was lost after {self.length / self.rate:.2f} s", self.device
            )
        return self.samples

    def wall_ns(self, index: int) -> int:
        """UTC epoch ns at which sample ``index`` left the ADC."""
        assert self.clock is not None
        return self.clock.wall_ns(time_of_frame(self.callbacks, index, self.rate))

    def mono_ns(self, wall_ns: int) -> int:
        assert self.clock is not None
        return self.clock.mono_ns(wall_ns)


def record(backend: AudioBackend, device: DeviceInfo, rate: int, seconds: float) -> Recording:
    """Record ``seconds`` from ``device``."""
    frames = int(seconds * rate)
    with Capture(backend, device, rate, seconds) as capture:
        while capture.poll().shape[0] < frames:
            time.sleep(POLL_S)
        started = capture.wall_ns(0)
    return Recording(capture.samples[:frames].copy(), rate, started, capture.mono_ns(started))


def calibrate_noise(
    backend: AudioBackend,
    device: DeviceInfo,
    seconds: float = 2.0,
    rate: int = 22050,
    margin_db: float = 12.0,
    floor_dbfs: float = -60.0,
) -> NoiseFloor:
    """Measure the room's noise for ``seconds``; the threshold is noise + margin, at least the floor."""
    recording = record(backend, device, rate, seconds)
    return noise_floor(recording.samples, rate, margin_db, floor_dbfs)


def listen(backend: AudioBackend, device: DeviceInfo, rate: int, settings: ListenSettings, noise: NoiseFloor) -> Answer:
    """Record from ``device`` until the answer ends, none came, or it ran too long.

    Returns at once when the outcome is decided: ``answer`` after ``min_silence_s`` of quiet,
    ``no_answer`` after ``answer_timeout_s`` without voice, ``too_long`` at ``max_answer_s``.
    """
    detector = Endpointer(
        rate, noise.threshold_dbfs, settings.answer_timeout_s, settings.max_answer_s, settings.min_silence_s
    )
    capacity = settings.answer_timeout_s + settings.max_answer_s + settings.min_silence_s + 1.0
    with Capture(backend, device, rate, capacity) as capture:
        outcome = None
        while outcome is None:
            time.sleep(POLL_S)
            outcome = detector.update(capture.poll())
            if outcome is None and capture.length >= capture.capacity - rate:
                outcome = "too_long" if detector.onset_index is not None else "no_answer"
        started = capture.wall_ns(0)
        onset = end = None
        if detector.onset_index is not None and outcome != "no_answer":
            end_index = detector.end_index if detector.end_index is not None else capture.length - 1
            onset, end = capture.wall_ns(detector.onset_index), capture.wall_ns(end_index)
    return Answer(
        outcome=outcome,
        onset_wall_ns=onset,
        end_wall_ns=end,
        duration_s=None if onset is None else (end - onset) / 1e9,
        samples=capture.samples.copy(),
        rate=rate,
        started_wall_ns=started,
        onset_index=detector.onset_index if onset is not None else None,
        end_index=detector.end_index if onset is not None else None,
        onset_mono_ns=None if onset is None else capture.mono_ns(onset),
        end_mono_ns=None if end is None else capture.mono_ns(end),
    )


def same_answer(
    a: Answer, b: Answer, min_ncc: float = 0.9, max_offset_s: float = 0.2, duration_tolerance: float = 0.15
) -> bool:
    """Whether ``b`` repeats ``a`` (the study's "identical answer" rule): both have voice,
    durations within ``duration_tolerance`` (relative, or 0.1 s), and their level envelopes
    correlate (NCC >= ``min_ncc``) at some offset up to ``max_offset_s``."""
    va, vb = a.voice(), b.voice()
    if len(va) == 0 or len(vb) == 0:
        return False
    da, db = len(va) / a.rate, len(vb) / b.rate
    if abs(da - db) > max(0.1, duration_tolerance * max(da, db)):
        return False
    frame_s = 0.010
    return similar_envelopes(
        envelope(va, a.rate, frame_s), envelope(vb, b.rate, frame_s), int(max_offset_s / frame_s), min_ncc
    )
