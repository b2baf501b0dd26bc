"""The speech engine interface and the registry of engines by name."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path

from harness.errors import HarnessError
from harness.speech.voices import VoiceInfo

# A single utterance never takes this long; a hung engine must not hang the bench.
RENDER_TIMEOUT_S = 120.0


class SpeechError(HarnessError):
    """The engine could not speak a text (unknown voice, engine failure, no audible output)."""


class Engine(ABC):
    """A text-to-speech engine that renders one utterance to a WAV file."""

    name: str

    @abstractmethod
    def version(self) -> str:
        """Version string of everything that shapes the audio (part of the cache key)."""

    @abstractmethod
    def voices(self) -> list[VoiceInfo]:
        """The voices this engine offers on this machine."""

    @abstractmethod
    def render(self, text: str, voice: str, rate: int, volume: float, out_path: Path) -> None:
        """Speak ``text`` into the WAV file ``out_path`` (any rate/format the engine produces).

        ``voice`` is an espeak-style id ("en-us", "gmw/en-us", "en-us+f2"), ``rate`` in words per
        minute, ``volume`` from 0 to 1. Raises SpeechError or ToolMissing.
        """


ENGINE_NAMES = ("espeak", "pyttsx3")


def default_engine_name() -> str:
    """espeak-ng's CLI on Linux; pyttsx3 (SAPI5 / NSSS) elsewhere."""
    return "espeak" if sys.platform.startswith("linux") else "pyttsx3"


@cache
def get_engine(name: str) -> Engine:
    """The engine called ``name`` (one shared instance per process)."""
    if name == "espeak":
        from harness.speech.espeak import EspeakEngine

        return EspeakEngine()
    if name == "pyttsx3":
        from harness.speech.pyttsx3_engine import Pyttsx3Engine

        return Pyttsx3Engine()
    raise HarnessError(f"unknown speech engine {name!r} (choose from {', '.join(ENGINE_NAMES)})")
