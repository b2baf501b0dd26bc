"""Offline transcripts of recorded answers (pocketsphinx with its bundled US English model).

Free dictation of synthetic voices is rough (see docs/bench.md for what was measured); the
transcript is evidence for reading a run, the answer WAV is always kept. Words the model's
dictionary lacks (skill names such as "fitbit") can be added to it and to its language model,
so that an expected keyword can be heard at all.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from math import gcd

import numpy as np
from scipy.signal import resample_poly

DECODER_RATE = 16_000


def recogniser_name() -> str:
    """The recogniser and its version, as logged with every check."""
    try:
        return f"pocketsphinx {importlib.metadata.version('pocketsphinx')}"
    except importlib.metadata.PackageNotFoundError:
        return "pocketsphinx"


def pronounce(word: str, lookup: Callable[[str], str | None]) -> str | None:
    """Phones for ``word``: the dictionary's, else the fewest dictionary words it splits into
    ("fitbit" -> "fit" + "bit"), else spelled letter by letter; None if even that fails."""
    known = lookup(word)
    if known:
        return known
    plain = word.replace("'", "")
    best: list[list[str] | None] = [[]] + [None] * len(plain)
    for end in range(1, len(plain) + 1):
        for start in range(max(0, end - 20), end):
            if best[start] is None:
                continue
            piece = lookup(plain[start:end]) if end - start > 1 else None
            if piece and (best[end] is None or len(best[start]) + 1 < len(best[end])):
                best[end] = [*best[start], piece]
    if best[-1]:
        return " ".join(best[-1])
    letters = [lookup(ch) or lookup(f"{ch}.") for ch in plain]
    return " ".join(letters) if plain and all(letters) else None


class Transcriber:
    """One loaded decoder (loading takes a fraction of a second), reused for every answer; not
    thread-safe (one per thread)."""

    def __init__(self, vocabulary: Iterable[str] = ()) -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(loglevel="FATAL", samprate=DECODER_RATE)
        self.add_words(vocabulary)

    def add_words(self, words: Iterable[str]) -> None:
        """Make lower-case ``words`` recognisable (dictionary and language model) when they are not."""
        decoder = self._decoder
        for word in sorted(set(words)):
            if decoder.lookup_word(word) is None:
                phones = pronounce(word, decoder.lookup_word)
                if phones is not None:
                    decoder.add_word(word, phones, True)

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
