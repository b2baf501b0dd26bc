"""Text -> normalised WAV through a content-addressed cache shared by threads and processes.

A cache file is named after the SHA-256 of everything that shapes its audio, so the name is the
index: a hit is a file that exists. Files appear by rename only, so readers never see a partial
one, and writers racing on one key just replace equal content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import wave
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.files import PRIVATE_FILE, private_dir, sha256_file
from harness.script.models import SpeechSettings
from harness.speech.cachedir import default_cache_dir
from harness.speech.engine import SpeechError, get_engine
from harness.speech.normalise import NORMALISATION_VERSION, SAMPLE_RATE, condition
from harness.wav import read_wav, write_wav


@dataclass(frozen=True)
class Synthesis:
    """A synthesised utterance: the cached WAV (mono 16-bit 22050 Hz) and what it holds."""

    path: Path
    sha256: str
    duration_s: float
    sample_rate: int
    cache_hit: bool


def cache_key(text: str, settings: SpeechSettings, engine_version: str) -> str:
    """SHA-256 over engine, engine version, voice, rate, volume, text and normalisation version."""
    fields = {
        "engine": settings.engine,
        "engine_version": engine_version,
        "voice": settings.voice,
        "rate": settings.rate,
        "volume": settings.volume,
        "text": text,
        "normalisation": NORMALISATION_VERSION,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def _describe(path: Path, cache_hit: bool) -> Synthesis:
    with wave.open(str(path), "rb") as wf:
        frames, rate = wf.getnframes(), wf.getframerate()
    return Synthesis(path, sha256_file(path), frames / rate, rate, cache_hit)


def cached_path(text: str, settings: SpeechSettings, cache_dir: Path | None = None) -> Path:
    """Where the cache keeps (or would keep) the WAV for ``text`` spoken with ``settings``."""
    engine = get_engine(settings.engine)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{cache_key(text, settings, engine.version())}.wav"


def synthesize(text: str, settings: SpeechSettings, cache_dir: Path | None = None) -> Synthesis:
    """Speak ``text`` with ``settings`` (engine, voice, rate, volume), served from the cache when possible.

    The WAV is mono 16-bit 22050 Hz, edge silence trimmed to 30 ms, level -20 dBFS RMS times the
    volume with peaks under -1 dBFS. Safe to call from many threads and processes at once.
    Raises SpeechError (empty or inaudible text, unknown voice), ToolMissing.
    """
    if not text.strip():
        raise SpeechError("nothing to say: the text is empty")
    path = cached_path(text, settings, cache_dir)
    private_dir(path.parent)
    if path.exists():
        try:
            hit = _describe(path, cache_hit=True)
        except (wave.Error, EOFError):
            pass  # a damaged cache file (e.g. a disk filled up outside our writes): render it again
        else:
            os.chmod(path, PRIVATE_FILE)  # files cached before the cache was private
            return hit
    scratch = Path(tempfile.mkdtemp(prefix=".render-", dir=path.parent))
    try:
        raw = scratch / "raw.wav"
        # The engine renders at full volume; the volume is applied after level normalisation.
        get_engine(settings.engine).render(text, settings.voice, settings.rate, 1.0, raw)
        samples, rate = read_wav(raw)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    audio = condition(samples, rate, settings.volume)
    if audio is None:
        raise SpeechError(f"{settings.engine} produced no audible speech for {text!r}")
    write_wav(path, audio, SAMPLE_RATE, PRIVATE_FILE)
    return _describe(path, cache_hit=False)


def synthesize_many(
    requests: Sequence[tuple[str, SpeechSettings]],
    cache_dir: Path | None = None,
    workers: int | None = None,
    on_done: Callable[[Synthesis], None] | None = None,
) -> list[Synthesis]:
    """:func:`synthesize` for many (text, settings) pairs, in parallel; results in request order.

    Equal requests are synthesised once. Engines run as subprocesses, so threads give real
    parallelism. ``on_done`` is called once per distinct request as it completes (for progress).
    The first failure is raised after cancelling what has not started.
    """
    keys = [cached_path(text, settings, cache_dir) for text, settings in requests]
    first: dict[Path, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)

    def report(future: Future[Synthesis]) -> None:
        if on_done is not None and not future.cancelled() and future.exception() is None:
            on_done(future.result())

    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)
    try:
        futures = {key: pool.submit(synthesize, *requests[i], cache_dir) for key, i in first.items()}
        for future in futures.values():
            future.add_done_callback(report)
        done = {key: future.result() for key, future in futures.items()}
    finally:
        pool.shutdown(cancel_futures=True)
    return [done[key] for key in keys]
