"""Speech synthesis: engines (espeak-ng CLI, pyttsx3) and a cache of normalised WAV files."""

from harness.speech.engine import ENGINE_NAMES, Engine, SpeechError, default_engine_name, get_engine
from harness.speech.synthesis import Synthesis, cache_key, cached_path, default_cache_dir, synthesize, synthesize_many
from harness.speech.texts import SpokenText, spoken_texts
from harness.speech.voices import VoiceInfo

__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "SpeechError",
    "SpokenText",
    "Synthesis",
    "VoiceInfo",
    "cache_key",
    "cached_path",
    "default_cache_dir",
    "default_engine_name",
    "get_engine",
    "spoken_texts",
    "synthesize",
    "synthesize_many",
]
