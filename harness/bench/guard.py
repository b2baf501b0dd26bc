"""The device guard: play, listen and calibrate on the run's devices, and wait out a lost device.

A device that fails mid-use raises :class:`DeviceLoss`; :meth:`DeviceGuard.recover` logs the
loss, waits for the device with back-off (re-scanning PortAudio) and logs its return, or gives
up with :class:`DeviceGone` after the run's wait.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.audio import Answer, calibrate_noise, listen, open_backend, resolve_device
from harness.audio.backend import PlaybackTiming
from harness.audio.devices import DeviceInfo
from harness.audio.vad import NoiseFloor
from harness.bench.options import RunOptions
from harness.bench.record import RunRecord
from harness.bench.view import RunView
from harness.defaults import default
from harness.errors import DeviceError, HarnessError
from harness.rundir.events import Calibration, DeviceLost, DeviceRestored
from harness.script.models import SessionSettings


class Stop(Exception):
    """The user asked the run to stop (first Ctrl-C or SIGTERM): stop between turns."""


class DeviceGone(HarnessError):
    """A device stayed away longer than the run waits for it."""


class DeviceLoss(Exception):
    """A device failed during use; the guard can wait for it."""

    def __init__(self, kind: str, device: str, error: DeviceError) -> None:
        super().__init__(str(error))
        self.kind, self.device, self.error = kind, device, error


class DeviceGuard:
    """The run's output (and input) device, resolved from the options."""

    def __init__(self, options: RunOptions, stop: threading.Event) -> None:
        if not options.output_device:
            raise HarnessError("no output device: give --output-device")
        self.options = options
        self.backend_name = options.backend or default.backend
        self.backend = open_backend(self.backend_name)
        self.output: DeviceInfo = resolve_device(options.output_device, "output", self.backend_name)
        self.input: DeviceInfo | None = (
            resolve_device(options.input_device, "input", self.backend_name) if options.input_device else None
        )
        self._stop = stop
        self._lost_since: float | None = None
        self.noise: NoiseFloor | None = None

    def play(self, samples: np.ndarray, rate: int, on_onset: Callable[[int], None] | None) -> PlaybackTiming:
        try:
            timing = self.backend.play(samples, rate, self.output, on_onset=on_onset)
        except DeviceError as exc:
            raise DeviceLoss("output", self.output.name, exc) from None
        return timing

    def listen(self, session: SessionSettings) -> Answer:
        assert self.input is not None
        try:
            return listen(self.backend, self.input, default.listen_rate, session, self.noise)
        except DeviceError as exc:
            raise DeviceLoss("input", self.input.name, exc) from None

    def settled(self) -> None:
        """A turn went through: the next loss starts a new wait."""
        self._lost_since = None

    def calibrate(self, record: RunRecord, view: RunView) -> None:
        """Measure the room's noise on the input (none without one) and log it."""
        if self.input is None:
            return
        seconds = self.options.calibration_s
        view.status("measuring the room's noise")
        while True:
            try:
                self.noise = calibrate_noise(self.backend, self.input, seconds, default.listen_rate)
                break
            except DeviceError as exc:
                self.recover(DeviceLoss("input", self.input.name, exc), None, record, view)
        record.emit(Calibration(device=self.input.name, seconds=seconds, noise=dataclasses.asdict(self.noise)))

    def recover(self, lost: DeviceLoss, plan_index: int | None, record: RunRecord, view: RunView) -> None:
        """Log the loss, wait for the device with back-off; raise :class:`DeviceGone` when it stays away.

        The wait is counted from the first of consecutive losses (reset by :meth:`settled`), so a
        device that reappears in the listing but fails on use cannot keep the run waiting for ever.
        """
        wait_s = self.options.device_wait_s
        record.emit(DeviceLost(kind=lost.kind, device=lost.device, message=str(lost.error), plan_index=plan_index))
        view.note(f"{lost.kind} device {lost.device} lost ({lost.error}); waiting up to {wait_s:g} s for it")
        view.status(f"waiting for the {lost.kind} device")
        began = time.monotonic()
        if self._lost_since is None:
            self._lost_since = began
        delay, attempts = 0.25, 0
        while True:
            waited = time.monotonic() - self._lost_since
            if waited >= wait_s:
                raise DeviceGone(f"{lost.kind} device {lost.device} lost and not back after {waited:.0f} s")
            if self._stop.wait(min(delay, wait_s - waited)):
                raise Stop
            attempts += 1
            if self._devices_back():
                break
            delay = min(delay * 2, 5.0)
        record.emit(
            DeviceRestored(kind=lost.kind, device=lost.device, waited_s=time.monotonic() - began, attempts=attempts)
        )
        view.note(f"{lost.kind} device {lost.device} is back")

    def _devices_back(self) -> bool:
        """Re-scan PortAudio and open (without starting) a stream on each device of the run."""
        try:
            self.backend.reset()
            self.output = resolve_device(self.options.output_device or "", "output", self.backend_name)
            self.backend.open_output(self.output, int(self.output.default_samplerate), _silence, 0.1).close()
            if self.options.input_device:
                self.input = resolve_device(self.options.input_device, "input", self.backend_name)
                self.backend.open_input(self.input, int(self.input.default_samplerate), _ignore, 0.1).close()
        except DeviceError:
            return False
        return True


def _silence(frames: int, dac: float, now: float, flagged: bool) -> tuple[np.ndarray, bool]:
    return np.zeros(frames, dtype=np.float32), True


def _ignore(block: np.ndarray, adc: float, now: float, flagged: bool) -> None:
    return None


def played_fields(timing: PlaybackTiming) -> dict[str, Any]:
    """The fields of a played event (utterance_ended, stop_spoken) from the playback's timing."""
    return {
        "onset_wall_ns": timing.onset_wall_ns,
        "end_wall_ns": timing.end_wall_ns,
        "onset_mono_ns": timing.onset_mono_ns,
        "end_mono_ns": timing.end_mono_ns,
        "latency_s": timing.latency_s,
        "device": timing.device.name,
        "sample_rate": timing.sample_rate,
        "frames": timing.frames,
        "backend": timing.backend,
    }
