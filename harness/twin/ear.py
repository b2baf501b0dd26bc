"""The twin's hearing: the bench speaker's sound cut into voiced segments, the wake word
spotted in them, the request after it recognised against the grammar.

Audio arrives at the device's rate, is resampled to 16 kHz mono s16 (pocketsphinx's model
rate) and split into segments by energy: a segment ends after ``end_silence_s`` of quiet.
The keyphrase search runs on each segment as it grows, so the wake word is noticed while the
request is still being spoken; a segment that starts while the microphone is open (a follow-up)
is reported as it starts. When the segment ends, the audio after the wake word is decoded with
the JSGF grammar. Recognition runs on this thread, never in the audio callback.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from harness.audio.backend import AudioBackend
from harness.audio.clock import Callback, measure_clock, time_of_frame
from harness.audio.devices import DeviceInfo
from harness.audio.vad import frame_levels
from harness.bench.transcribe import pronounce
from harness.twin.config import Hearing
from harness.twin.grammar import Catalogue

RATE = 16000
FRAME = 320  # 20 ms at 16 kHz
PRE_ROLL_S = 0.3
# Frames the keyphrase search waits to confirm the wake word (pocketsphinx's default 10 made the
# twin start uploading ~0.65 s after an utterance's onset; with 3, ~0.57 s, near an Echo's 0.5 s;
# fewer cut the word's end short on espeak voices).
KWS_DELAY_FRAMES = 3
DITHER_LSB = 8.0  # about -72 dBFS
# Decoder beams that keep long grammar alternatives alive; the two-pass search off, because its
# second pass rejected whole-sentence matches on synthetic voices.
GRAMMAR_OPTIONS = dict(beam=1e-60, wbeam=1e-40, fwdflat=False, bestpath=False)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wake:
    """The wake word: its end in the audio (``wall_ns``) and when the twin noticed it."""

    wall_ns: int
    noticed_ns: int
    segment_onset_ns: int


@dataclass(frozen=True)
class Heard:
    """A finished request segment: the decoder's hypothesis and where the speech was."""

    hypothesis: str | None
    onset_ns: int
    end_ns: int
    wake: Wake | None
    decode_s: float


class Resampler:
    """Streaming polyphase resampling from ``rate_in`` to 16 kHz without block-edge clicks:
    each block is filtered with a margin of its neighbours and only the settled middle kept."""

    def __init__(self, rate_in: int) -> None:
        g = gcd(rate_in, RATE)
        self.up, self.down = RATE // g, rate_in // g
        self.margin = self.down * max(1, -(-64 // self.down))
        self.buf = np.zeros(0, np.float32)
        self.left = 0

    def feed(self, block: np.ndarray) -> np.ndarray:
        if self.up == self.down:
            return block
        self.buf = np.concatenate([self.buf, block])
        n = (len(self.buf) - self.left - self.margin) // self.down * self.down
        if n <= 0:
            return np.zeros(0, np.float32)
        y = resample_poly(self.buf[: self.left + n + self.margin], self.up, self.down)
        out = y[self.left * self.up // self.down : (self.left + n) * self.up // self.down]
        keep = max(0, self.left + n - self.margin)
        self.left = self.left + n - keep
        self.buf = self.buf[keep:]
        return out.astype(np.float32)


class Ear:
    """Listens to ``device`` until :meth:`stop`; calls ``on_wake``, ``on_open_speech`` (a segment
    began while the microphone was open: its onset, ns) and ``on_heard`` from its thread. Every
    segment reported by ``on_wake`` or ``on_open_speech`` ends with one ``on_heard``."""

    def __init__(
        self,
        backend: AudioBackend,
        device: DeviceInfo,
        catalogue: Catalogue,
        settings: Hearing,
        on_wake: Callable[[Wake], None],
        on_open_speech: Callable[[int], None],
        on_heard: Callable[[Heard], None],
    ) -> None:
        from pocketsphinx import Decoder

        self.backend, self.device, self.settings = backend, device, settings
        self.on_wake, self.on_open_speech, self.on_heard = on_wake, on_open_speech, on_heard
        quiet = dict(loglevel="FATAL")
        self.kws = Decoder(
            keyphrase=settings.wake_word.lower(),
            kws_threshold=settings.kws_threshold,
            kws_delay=KWS_DELAY_FRAMES,
            **quiet,
        )
        self.grammar = Decoder(**GRAMMAR_OPTIONS, **quiet)
        for word in sorted(catalogue.words()):
            if self.grammar.lookup_word(word) is None:
                phones = pronounce(word, self.grammar.lookup_word)
                if phones is None:
                    raise ValueError(f"no pronunciation for {word!r}")
                self.grammar.add_word(word, phones, False)
        self.grammar.add_jsgf_string("twin", catalogue.jsgf().encode())
        self.grammar.activate_search("twin")
        self.rate = int(device.default_samplerate)
        self._blocks: queue.Queue[np.ndarray] = queue.Queue()
        self._callbacks: deque[Callback] = deque(maxlen=400)
        self._received = 0
        self._stop = threading.Event()
        self._open_until = 0.0  # monotonic time until which a request needs no wake word
        self._thread = threading.Thread(target=self._run, daemon=True, name="twin-ear")
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def prime(self, samples: np.ndarray, rate: int) -> None:
        """Run a sample of the voice to be heard through both decoders once, so their live
        cepstral normalisation starts adapted (the very first request was missed without it)."""
        audio = Resampler(rate).feed(np.concatenate([samples, np.zeros(rate // 2, np.float32)]))
        pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16).tobytes()
        for decoder in (self.kws, self.grammar):
            decoder.start_utt()
            decoder.process_raw(pcm, False, True)
            decoder.end_utt()

    def open_mic(self, seconds: float) -> None:
        """Accept a request without the wake word for ``seconds`` (a skill asked a question)."""
        self._open_until = time.monotonic() + seconds

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _deliver(self, block: np.ndarray, adc: float, now: float, flagged: bool) -> None:
        self._callbacks.append(Callback(adc, now, self._received, len(block)))
        self._received += len(block)
        self._blocks.put(block)

    def _wall_ns(self, frame_16k: int) -> int:
        """Wall time of 16 kHz sample ``frame_16k`` (mapped back to the device rate)."""
        frame = int(round(frame_16k * self.rate / RATE))
        return self._clock.wall_ns(time_of_frame(list(self._callbacks), frame, self.rate))

    def _run(self) -> None:
        try:
            stream = self.backend.open_input(self.device, self.rate, self._deliver, 0.05)
            stream.start()
            self._clock = measure_clock(stream.stream_time)
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            self._listen()
        except BaseException as exc:  # the twin reports it and stops; a silent deaf twin is worse
            self.error = exc
            log.exception("the twin's ear failed")
        finally:
            stream.close()

    def _listen(self) -> None:
        resampler = Resampler(self.rate)
        dither = np.random.default_rng(0)
        pending = np.zeros(0, np.int16)
        position = 0  # 16 kHz samples consumed so far
        pre_roll: deque[np.ndarray] = deque(maxlen=int(PRE_ROLL_S * RATE / FRAME))
        segment: list[np.ndarray] | None = None
        seg_start = quiet = 0
        mic_open = False  # the segment began while a request needed no wake word
        wake: Wake | None = None
        wake_cut = 0
        end_frames = int(self.settings.end_silence_s * RATE / FRAME)
        max_frames = int(self.settings.max_request_s * RATE / FRAME)
        while not self._stop.is_set():
            try:
                block = self._blocks.get(timeout=0.2)
            except queue.Empty:
                continue
            samples = resampler.feed(block)
            # Dither: a null sink's exact digital silence upsets the decoder's features (a sentence
            # ending in it was misrecognised); a real microphone never delivers exact zeros.
            noisy = np.clip(samples * 32767 + dither.normal(0, DITHER_LSB, len(samples)), -32768, 32767)
            pending = np.concatenate([pending, noisy.astype(np.int16)])
            whole = len(pending) // FRAME * FRAME
            frames, pending = pending[:whole], pending[whole:]
            levels = frame_levels(frames.astype(np.float32) / 32768, FRAME)
            for k, level in enumerate(levels):
                frame = frames[k * FRAME : (k + 1) * FRAME]
                voiced = level > self.settings.threshold_dbfs
                if segment is None:
                    if voiced:
                        segment = [*pre_roll, frame]
                        seg_start = position - len(pre_roll) * FRAME
                        quiet, wake, wake_cut = 0, None, 0
                        self.kws.start_utt()
                        self.kws.process_raw(np.concatenate(segment).tobytes(), False, False)
                        mic_open = time.monotonic() < self._open_until
                        if mic_open:
                            self.on_open_speech(self._wall_ns(max(seg_start, 0)))
                    else:
                        pre_roll.append(frame)
                else:
                    segment.append(frame)
                    quiet = 0 if voiced else quiet + 1
                    if wake is None:
                        self.kws.process_raw(frame.tobytes(), False, False)
                        if self.kws.hyp() is not None:
                            ends = [
                                s.end_frame
                                for s in self.kws.seg() or []
                                if s.word.startswith(self.settings.wake_word.lower())
                            ]
                            # Keyphrase frames are 10 ms (160 samples) from the segment's start.
                            wake_cut = min((ends[0] + 1) * 160, len(segment) * FRAME) if ends else len(segment) * FRAME
                            wake = Wake(
                                self._wall_ns(seg_start + wake_cut), time.time_ns(), self._wall_ns(max(seg_start, 0))
                            )
                            self.on_wake(wake)
                    if quiet >= end_frames or len(segment) >= max_frames:
                        self.kws.end_utt()
                        self._finish(np.concatenate(segment), seg_start, wake, wake_cut, quiet, mic_open)
                        segment = None
                        pre_roll.clear()
                position += FRAME

    def _finish(self, audio: np.ndarray, start: int, wake: Wake | None, cut: int, quiet: int, mic_open: bool) -> None:
        if wake is None and not mic_open:
            return  # speech without the wake word: a real speaker ignores it
        request = audio[cut:] if wake is not None else audio
        began = time.monotonic()
        self.grammar.start_utt()
        self.grammar.process_raw(request.tobytes(), False, True)
        self.grammar.end_utt()
        hyp = self.grammar.hyp()
        end = start + len(audio) - quiet * FRAME
        if wake is None:
            self._open_until = 0.0
        self.on_heard(
            Heard(
                hyp.hypstr if hyp is not None and hyp.hypstr else None,
                self._wall_ns(max(start, 0)) if wake is None else wake.segment_onset_ns,
                self._wall_ns(end),
                wake,
                time.monotonic() - began,
            )
        )
