"""Voice descriptions and espeak-style voice ids ("en-us", "gmw/en-us", "en-us+f2")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VoiceInfo:
    """One voice an engine offers: the id to pass as ``voice``, a display name, its languages."""

    id: str
    name: str
    languages: tuple[str, ...] = ()
    gender: str | None = None


@dataclass(frozen=True)
class VoiceRequest:
    """An espeak-style voice id split into parts: ``[family/]language[+variant]``."""

    raw: str
    family: str | None
    language: str
    variant: str | None

    @property
    def gender(self) -> str | None:
        """The gender espeak's variant names imply ("f2" -> Female, "m3" -> Male), if any."""
        if self.variant and self.variant[0] in "fm" and self.variant[1:].isdigit():
            return "Female" if self.variant[0] == "f" else "Male"
        return None


def parse_voice(voice: str) -> VoiceRequest:
    """Split ``gmw/en-us+f2`` into family ``gmw``, language ``en-us``, variant ``f2``."""
    base, _, variant = voice.strip().partition("+")
    family, _, language = base.rpartition("/")
    return VoiceRequest(voice, family or None, language.lower().replace("_", "-"), variant or None)


def language_key(code: str) -> str:
    """Comparable form of a language code: "en_US", "en-US" and "EN-us" all become "en-us"."""
    return code.strip().lower().replace("_", "-")


def match_voice(request: VoiceRequest, voices: list[VoiceInfo]) -> VoiceInfo | None:
    """The best voice for an espeak-style request among another engine's voices.

    Preference: the exact id; then a voice whose id ends with the request's base; then the same
    language (and the variant's gender, when it implies one); then the same primary language.
    """
    raw = request.raw.lower()
    base = raw.partition("+")[0]
    for v in voices:
        if v.id.lower() == raw:
            return v
    for v in voices:
        if v.id.lower() == base or v.id.lower().rsplit("/", 1)[-1] == request.language:
            return v
    primary = request.language.split("-")[0]

    def ranked(same: list[VoiceInfo]) -> VoiceInfo | None:
        if not same:
            return None
        gendered = [v for v in same if request.gender and v.gender == request.gender]
        return (gendered or same)[0]

    exact = [v for v in voices if request.language in map(language_key, v.languages)]
    loose = [v for v in voices if any(language_key(lang).split("-")[0] == primary for lang in v.languages)]
    return ranked(exact) or ranked(loose)
