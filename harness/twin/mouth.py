"""The twin's voice: answers played on the answer speaker, quieter while someone speaks
(ducking) and cut at once when asked to stop, with DAC onset and end times like the bench's.

Played by the audio back end's own :meth:`AudioBackend.play` (steered by a
:class:`PlayControl`), so both sides date sound alike and an answer is heard to its last sample.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from harness.audio.backend import AudioBackend, DeviceLost, PlayControl
from harness.audio.devices import DeviceInfo

DUCK_GAIN = 0.25


@dataclass(frozen=True)
class Spoken:
    """When an answer met the DAC; ``cut`` when it was stopped (or its device lost) before its end."""

    onset_wall_ns: int | None
    end_wall_ns: int | None
    cut: bool
    seconds_played: float


class Mouth:
    def __init__(self, backend: AudioBackend, device: DeviceInfo) -> None:
        self.backend, self.device = backend, device
        self.ducked = threading.Event()
        self.stop = threading.Event()
        self._control = PlayControl(stop=self.stop, gain=self._gain)

    def _gain(self) -> float:
        return DUCK_GAIN if self.ducked.is_set() else 1.0

    def say(self, samples: np.ndarray, rate: int) -> Spoken:
        """Play ``samples``; returns once they (or what was played before :attr:`stop`) left the DAC.

        A device lost mid-answer ends it like a stop (the twin keeps listening).
        """
        try:
            timing = self.backend.play(samples, rate, self.device, control=self._control)
        except DeviceLost as lost:
            if lost.timing is None:
                return Spoken(None, None, True, 0.0)
            timing = lost.timing
        cut = timing.stopped or not timing.complete
        return Spoken(timing.onset_wall_ns, timing.end_wall_ns, cut, max(timing.frames - 1, 0) / rate)
