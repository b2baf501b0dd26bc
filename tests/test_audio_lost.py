"""A device lost mid-play: the lab's PulseAudio is killed under a playing stream.

Uses its own lab instance so the session's lab stays up for the other tests.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from harness.audio import Capture, DeviceLost, lab_status, lab_up, open_backend, resolve_device
from harness.errors import DeviceError

from conftest import running_lab

pytestmark = pytest.mark.lab
RATE = 22050


def kill_server_after(base, delay_s: float) -> threading.Timer:
    pid = lab_status(base).pid
    assert pid is not None
    timer = threading.Timer(delay_s, os.kill, (pid, signal.SIGKILL))
    timer.start()
    return timer


@pytest.mark.parametrize("backend_name", ["sounddevice", "pyaudio"])
def test_killed_server_mid_play_raises_device_error_then_recovers(tmp_path, backend_name):
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * RATE) / RATE)).astype(np.float32)
    with running_lab(tmp_path / "lab") as lab:
        backend = open_backend(backend_name)
        out = resolve_device(lab.output, "output", backend_name)
        timer = kill_server_after(lab.base, 0.8)
        started = time.monotonic()
        with pytest.raises(DeviceError) as caught:
            backend.play(tone, RATE, out)
        timer.join()
        assert time.monotonic() - started < 2.5  # noticed, not played to the end as if nothing happened
        lost = caught.value
        assert isinstance(lost, DeviceLost) and lab.output in str(lost)
        assert lost.timing is not None and not lost.timing.complete
        assert 0 < lost.timing.frames < len(tone)

        # The device comes back: a reset back end plays again.
        lab_up(lab.base)
        backend.reset()
        timing = backend.play(tone[: RATE // 4], RATE, resolve_device(lab.output, "output", backend_name))
        assert timing.complete


def test_killed_server_while_recording_raises_device_error(tmp_path):
    with running_lab(tmp_path / "lab") as lab:
        backend = open_backend()
        mic = resolve_device(lab.mic, "input")
        with pytest.raises(DeviceLost, match=lab.mic):
            with Capture(backend, mic, RATE, capacity_s=10) as capture:
                timer = kill_server_after(lab.base, 0.5)
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline:
                    capture.poll()
                    time.sleep(0.01)
        timer.join()
