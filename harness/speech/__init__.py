"""Speech synthesis: engines (espeak-ng CLI, pyttsx3) and a cache of normalised WAV files.

Names are imported from their modules on first use, so that the command line starts without
numpy and the script models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.speech.cachedir import default_cache_dir
    from harness.speech.engine import ENGINE_NAMES, Engine, SpeechError, default_engine_name, get_engine
    from harness.speech.synthesis import Synthesis, cache_key, cached_path, synthesize, synthesize_many
    from harness.speech.texts import SpokenText, spoken_texts
    from harness.speech.voices import VoiceInfo

_MODULE_OF = {
    "ENGINE_NAMES": "engine",
    "Engine": "engine",
    "SpeechError": "engine",
    "default_engine_name": "engine",
    "get_engine": "engine",
    "Synthesis": "synthesis",
    "cache_key": "synthesis",
    "cached_path": "synthesis",
    "default_cache_dir": "cachedir",
    "synthesize": "synthesis",
    "synthesize_many": "synthesis",
    "SpokenText": "texts",
    "spoken_texts": "texts",
    "VoiceInfo": "voices",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value
