"""The ``sounddevice`` back end (default)."""

from __future__ import annotations

from harness.audio.backend import AudioBackend, Deliver, Render
from harness.audio.devices import DeviceInfo
from harness.errors import DeviceError


class _SdStream:
    def __init__(self, stream) -> None:
        self._stream = stream
        self.latency_s = float(stream.latency)

    def start(self) -> None:
        self._stream.start()

    def stream_time(self) -> float:
        return float(self._stream.time)

    def is_active(self) -> bool:
        return bool(self._stream.active)

    def close(self) -> None:
        self._stream.close(ignore_errors=True)


class SounddeviceBackend(AudioBackend):
    name = "sounddevice"

    def __init__(self) -> None:
        import sounddevice

        self._sd = sounddevice

    def devices(self) -> list[DeviceInfo]:
        sd = self._sd
        hostapis = [api["name"] for api in sd.query_hostapis()]
        defaults = {kind: _default_index(sd, kind) for kind in ("input", "output")}
        return [
            DeviceInfo(
                index=int(d["index"]),
                name=str(d["name"]),
                hostapi=hostapis[d["hostapi"]],
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                is_default_input=d["index"] == defaults["input"],
                is_default_output=d["index"] == defaults["output"],
            )
            for d in sd.query_devices()
        ]

    def open_output(self, device: DeviceInfo, rate: int, render: Render, latency_s: float) -> _SdStream:
        sd = self._sd

        def callback(outdata, frames, time_info, status) -> None:
            block, last = render(frames, time_info.outputBufferDacTime, time_info.currentTime, bool(status))
            outdata[:, 0] = block
            if last:
                raise sd.CallbackStop

        try:
            stream = sd.OutputStream(
                samplerate=rate, device=device.index, channels=1, dtype="float32", latency=latency_s, callback=callback
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"cannot open output device {device.name!r}: {exc}") from None
        return _SdStream(stream)

    def open_input(self, device: DeviceInfo, rate: int, deliver: Deliver, latency_s: float) -> _SdStream:
        sd = self._sd

        def callback(indata, frames, time_info, status) -> None:
            deliver(indata[:, 0].copy(), time_info.inputBufferAdcTime, time_info.currentTime, bool(status))

        try:
            stream = sd.InputStream(
                samplerate=rate, device=device.index, channels=1, dtype="float32", latency=latency_s, callback=callback
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"cannot open input device {device.name!r}: {exc}") from None
        return _SdStream(stream)

    def reset(self) -> None:
        # sounddevice's documented way to make PortAudio scan devices again.
        self._sd._terminate()
        self._sd._initialize()


def _default_index(sd, kind: str) -> int:
    try:
        return int(sd.query_devices(kind=kind)["index"])
    except (sd.PortAudioError, ValueError):
        return -1
