"""Mono 16-bit PCM WAV files as numpy arrays: the one audio format every stage exchanges."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.files import PRIVATE_FILE, atomic_write_bytes


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file; returns (float32 samples in [-1, 1], shape (n,), mono mix) and the rate."""
    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, rate = wf.getnchannels(), wf.getsampwidth(), wf.getframerate()
            raw = wf.readframes(wf.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InputError(path, f"not a PCM WAV file: {exc}") from None
    if width != 2:
        raise InputError(path, f"expected 16-bit samples, found {8 * width}-bit")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """Encode float samples in [-1, 1] (clipped) as a mono 16-bit WAV file in memory."""
    pcm = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    data = (pcm * 32767.0).round().astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(data)
    return buf.getvalue()


def write_wav(path: str | Path, samples: np.ndarray, rate: int, mode: int = PRIVATE_FILE) -> Path:
    """Write float samples as a mono 16-bit WAV, atomically (temporary file + rename); raises OutputError."""
    return atomic_write_bytes(path, wav_bytes(samples, rate), mode)
