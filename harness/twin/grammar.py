"""What the twin can understand: the enabled skills' utterances plus built-in requests, as a
JSGF grammar (words the recogniser's dictionary lacks are pronounced by
:func:`harness.bench.transcribe.pronounce`).

Alexa matches a request against the interaction models of the installed skills; the twin does
the same with a grammar whose alternatives are the persona's requests (wake word removed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.script import BUILTIN_SKILL_ID, Persona
from harness.script.wake import words

BUILTIN_NAME = "Built-in"
STOP_REQUESTS = frozenset({"stop", "cancel", "alexa stop"})


@dataclass(frozen=True)
class Request:
    """One request the twin understands. ``text`` is its words, lower case, space separated."""

    text: str
    skill_id: str
    skill_name: str
    utterance_id: str | None
    follow_up_of: str | None = None
    has_follow_ups: bool = False

    @property
    def is_stop(self) -> bool:
        return self.text in STOP_REQUESTS


def request_words(text: str, wake_word: str) -> str:
    """``text`` as the grammar holds it: words only, lower case, wake word removed."""
    found = words(text)
    wake = words(wake_word)
    if found[: len(wake)] == wake:
        found = found[len(wake) :]
    return " ".join(found)


class Catalogue:
    """Every request of the personas' skills and built-ins, by their words."""

    def __init__(self, personas: Iterable[Persona], builtins: Iterable[str], wake_word: str) -> None:
        self.requests: dict[str, Request] = {}
        for persona in personas:
            for skill in persona.skills:
                for n, utterance in enumerate(skill.utterances, start=1):
                    uid = f"{skill.id}/{n}"
                    self._add(
                        Request(
                            request_words(utterance.text, wake_word),
                            skill.id,
                            skill.name,
                            uid,
                            has_follow_ups=bool(utterance.follow_ups),
                        )
                    )
                    for follow in utterance.follow_ups:
                        self._add(
                            Request(request_words(follow, wake_word), skill.id, skill.name, uid, follow_up_of=uid)
                        )
            for n, utterance in enumerate(persona.builtins, start=1):
                self._add(
                    Request(
                        request_words(utterance.text, wake_word),
                        BUILTIN_SKILL_ID,
                        BUILTIN_NAME,
                        f"{BUILTIN_SKILL_ID}/{n}",
                        has_follow_ups=bool(utterance.follow_ups),
                    )
                )
        for text in builtins:
            self._add(Request(request_words(text, wake_word), BUILTIN_SKILL_ID, BUILTIN_NAME, None))

    def _add(self, request: Request) -> None:
        # The first meaning wins: a persona's own utterance beats a built-in with the same words.
        if request.text and request.text not in self.requests:
            self.requests[request.text] = request

    def words(self) -> set[str]:
        return {w for text in self.requests for w in text.split()}

    def jsgf(self, name: str = "twin") -> str:
        """A JSGF grammar accepting exactly one request."""
        alternatives = " | ".join(sorted(self.requests))
        return f"#JSGF V1.0;\ngrammar {name};\npublic <request> = ( {alternatives} );\n"

    def match(self, hypothesis: str | None) -> Request | None:
        return self.requests.get(" ".join((hypothesis or "").split())) if hypothesis else None
