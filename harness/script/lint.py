"""Warnings about valid scripts that probably do not do what their author meant."""

from __future__ import annotations

from collections.abc import Iterator

from harness.script.models import BUILTIN_SKILL_ID, Persona, Utterance
from harness.script.wake import spoken_text, starts_with_wake_word, words
from harness.yamlsource import Loc

#: An utterance longer than this when spoken is probably cut off by the speaker.
MAX_SPOKEN_S = 15.0


def estimated_seconds(text: str, rate_wpm: int) -> float:
    """Rough speaking time of ``text`` at ``rate_wpm`` words per minute."""
    return len(words(text)) * 60.0 / rate_wpm


def _utterances(persona: Persona) -> Iterator[tuple[Loc, str, Utterance]]:
    """(path in the document, utterance id, utterance) of every utterance, in file order."""
    for i, skill in enumerate(persona.skills):
        for j, utterance in enumerate(skill.utterances):
            yield ("skills", i, "utterances", j), f"{skill.id}/{j + 1}", utterance
    for j, utterance in enumerate(persona.builtins):
        yield ("builtins", j), f"{BUILTIN_SKILL_ID}/{j + 1}", utterance


def lint(persona: Persona) -> list[tuple[Loc, str]]:
    """Warnings as (path in the document, message), in file order."""
    found: list[tuple[Loc, str]] = []
    wake = persona.speech.wake_word
    rate = persona.speech.rate
    if not starts_with_wake_word(persona.session.stop_phrase, wake):
        found.append((("session", "stop_phrase"), f"stop phrase does not start with the wake word '{wake}'"))
    if persona.persona.control and persona.skills:
        found.append((("skills",), "a control persona normally enables no skills"))
    for i, skill in enumerate(persona.skills):
        # Spacing and punctuation vary ("big sky", "BigSky"): compare the letters only.
        invocation = "".join(words(skill.invocation))
        if not any(invocation in "".join(words(u.text)) for u in skill.utterances):
            found.append(
                (
                    ("skills", i, "invocation"),
                    f"no utterance of skill '{skill.id}' says its invocation name "
                    f"'{skill.invocation}', so Alexa may not route them to the skill",
                )
            )
    seen: dict[tuple[str, ...], str] = {}
    for loc, utterance_id, utterance in _utterances(persona):
        text_loc = (*loc, "text")
        spoken = spoken_text(utterance.text, wake)
        if not starts_with_wake_word(utterance.text, wake):
            found.append((text_loc, f"no wake word; it will be spoken as '{spoken}'"))
        key = tuple(words(spoken))
        if key in seen:
            found.append((text_loc, f"same words as utterance {seen[key]}"))
        else:
            seen[key] = utterance_id
        seconds = estimated_seconds(spoken, rate)
        if seconds > MAX_SPOKEN_S:
            found.append((text_loc, f"about {seconds:.0f} s when spoken at {rate} wpm (over {MAX_SPOKEN_S:.0f} s)"))
        for k, follow_up in enumerate(utterance.follow_ups):
            seconds = estimated_seconds(follow_up, rate)
            if seconds > MAX_SPOKEN_S:
                found.append(
                    (
                        (*loc, "follow_ups", k),
                        f"about {seconds:.0f} s when spoken at {rate} wpm (over {MAX_SPOKEN_S:.0f} s)",
                    )
                )
    return found
