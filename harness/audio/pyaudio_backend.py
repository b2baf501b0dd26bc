"""The ``pyaudio`` back end (the study's own binding)."""

from __future__ import annotations

import numpy as np

from harness.audio.backend import AudioBackend, Deliver, Render
from harness.audio.devices import DeviceInfo
from harness.audio.probe import quiet_probe
from harness.errors import DeviceError


class _PaStream:
    def __init__(self, stream, latency_s: float) -> None:
        self._stream = stream
        self.latency_s = latency_s

    def start(self) -> None:
        self._stream.start_stream()

    def stream_time(self) -> float:
        return float(self._stream.get_time())

    def is_active(self) -> bool:
        return bool(self._stream.is_active())

    def close(self) -> None:
        # Pa_CloseStream discards what is still queued; stop_stream() would play it out first.
        self._stream.close()


class PyAudioBackend(AudioBackend):
    name = "pyaudio"

    def __init__(self) -> None:
        import pyaudio

        self._pyaudio = pyaudio
        with quiet_probe():  # ALSA's and JACK's probe messages (sounddevice silences its own)
            self._pa = pyaudio.PyAudio()

    def devices(self) -> list[DeviceInfo]:
        pa = self._pa
        defaults = {
            "input": _default_index(pa.get_default_input_device_info),
            "output": _default_index(pa.get_default_output_device_info),
        }
        result = []
        for index in range(pa.get_device_count()):
            d = pa.get_device_info_by_index(index)
            result.append(
                DeviceInfo(
                    index=index,
                    name=str(d["name"]),
                    hostapi=str(pa.get_host_api_info_by_index(d["hostApi"])["name"]),
                    max_input_channels=int(d["maxInputChannels"]),
                    max_output_channels=int(d["maxOutputChannels"]),
                    default_samplerate=float(d["defaultSampleRate"]),
                    is_default_input=index == defaults["input"],
                    is_default_output=index == defaults["output"],
                )
            )
        return result

    def _open(self, device: DeviceInfo, rate: int, latency_s: float, output: bool, callback) -> _PaStream:
        kind = "output" if output else "input"
        try:
            stream = self._pa.open(
                rate=rate,
                channels=1,
                format=self._pyaudio.paFloat32,
                output=output,
                input=not output,
                output_device_index=device.index if output else None,
                input_device_index=None if output else device.index,
                # PyAudio always asks for the device's low latency; a larger buffer is the only
                # way to ask for more headroom.
                frames_per_buffer=max(64, int(latency_s * rate / 2)),
                start=False,
                stream_callback=callback,
            )
        except (OSError, ValueError) as exc:
            raise DeviceError(f"cannot open {kind} device {device.name!r}: {exc}") from None
        latency = stream.get_output_latency() if output else stream.get_input_latency()
        return _PaStream(stream, float(latency))

    def open_output(self, device: DeviceInfo, rate: int, render: Render, latency_s: float) -> _PaStream:
        pyaudio = self._pyaudio

        def callback(in_data, frame_count, time_info, status):
            block, last = render(
                frame_count, time_info["output_buffer_dac_time"], time_info["current_time"], bool(status)
            )
            return block.tobytes(), pyaudio.paComplete if last else pyaudio.paContinue

        return self._open(device, rate, latency_s, True, callback)

    def open_input(self, device: DeviceInfo, rate: int, deliver: Deliver, latency_s: float) -> _PaStream:
        pyaudio = self._pyaudio

        def callback(in_data, frame_count, time_info, status):
            block = np.frombuffer(in_data, dtype=np.float32).copy()
            deliver(block, time_info["input_buffer_adc_time"], time_info["current_time"], bool(status))
            return None, pyaudio.paContinue

        return self._open(device, rate, latency_s, False, callback)

    def reset(self) -> None:
        self._pa.terminate()
        with quiet_probe():
            self._pa = self._pyaudio.PyAudio()


def _default_index(getter) -> int:
    try:
        return int(getter()["index"])
    except OSError:
        return -1
