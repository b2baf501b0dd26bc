"""The twin's voice: answers played on the answer speaker, quieter while someone speaks
(ducking) and cut at once when asked to stop, with DAC onset and end times like the bench's.

Built on the audio back end's raw output stream rather than ``AudioBackend.play``, which
cannot be interrupted; timing uses the same clock helpers, so both sides date sound alike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from harness.audio.backend import DEFAULT_LATENCY_S, AudioBackend
from harness.audio.clock import Callback, better_clock, measure_clock, time_of_frame
from harness.audio.devices import DeviceInfo

DUCK_GAIN = 0.25


@dataclass(frozen=True)
class Spoken:
    """When an answer met the DAC; ``cut`` when it was stopped before its end."""

    onset_wall_ns: int | None
    end_wall_ns: int | None
    cut: bool
    seconds_played: float


class Mouth:
    def __init__(self, backend: AudioBackend, device: DeviceInfo) -> None:
        self.backend, self.device = backend, device
        self.ducked = threading.Event()
        self.stop = threading.Event()

    def say(self, samples: np.ndarray, rate: int) -> Spoken:
        """Play ``samples``; returns once they (or what was played before :attr:`stop`) left the DAC."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        callbacks: list[Callback] = []
        state = {"position": 0, "cut_at": None}

        def render(frames: int, dac: float, now: float, flagged: bool) -> tuple[np.ndarray, bool]:
            callbacks.append(Callback(dac, now, state["position"], frames))
            block = np.zeros(frames, np.float32)
            if self.stop.is_set():
                state["cut_at"] = state["cut_at"] if state["cut_at"] is not None else state["position"]
                state["position"] += frames
                return block, True
            chunk = samples[state["position"] : state["position"] + frames]
            block[: len(chunk)] = chunk * (DUCK_GAIN if self.ducked.is_set() else 1.0)
            state["position"] += frames
            return block, state["position"] >= len(samples)

        stream = self.backend.open_output(self.device, rate, render, DEFAULT_LATENCY_S)
        try:
            stream.start()
            clock = measure_clock(stream.stream_time)
            while stream.is_active():
                time.sleep(0.005)
            clock = better_clock(clock, measure_clock(stream.stream_time))
        finally:
            stream.close()
        if not callbacks:
            return Spoken(None, None, True, 0.0)
        last = (state["cut_at"] if state["cut_at"] is not None else len(samples)) - 1
        onset = clock.wall_ns(time_of_frame(callbacks, 0, rate))
        end = clock.wall_ns(time_of_frame(callbacks, max(last, 0), rate))
        remaining = (end - time.time_ns()) / 1e9
        if remaining > 0:
            time.sleep(remaining)  # the stream reports done before its buffer has drained
        return Spoken(onset, end, state["cut_at"] is not None, max(last, 0) / rate)
