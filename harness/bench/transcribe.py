"""Offline transcripts of recorded answers (pocketsphinx with its bundled US English model).

Free dictation of synthetic voices is rough; the transcript is a hint for reading a run, not
ground truth. The answer WAV is always kept.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

DECODER_RATE = 16_000


class Transcriber:
    """One loaded decoder (loading takes a fraction of a second), reused for every answer."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(loglevel="FATAL", samprate=DECODER_RATE)

    def transcribe(self, samples: np.ndarray, rate: int) -> str:
        """The decoder's best hypothesis for mono float samples in [-1, 1] at ``rate`` Hz ("" if none)."""
        if rate != DECODER_RATE:
            g = gcd(DECODER_RATE, rate)
            samples = resample_poly(samples, DECODER_RATE // g, rate // g)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""
