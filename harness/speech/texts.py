"""Everything a persona will say in a run, once each: utterances, follow-ups, the stop phrase."""

from __future__ import annotations

from dataclasses import dataclass

from harness.script.models import Persona, SpeechSettings
from harness.script.plan import PlanItem

STOP_ID = "stop"


@dataclass(frozen=True)
class SpokenText:
    """One distinct thing a persona says, with the id it is exported and logged under.

    Ids: ``<skill>/<n>`` for an utterance, ``<skill>/<n>/followup-<k>`` for its k-th follow-up,
    ``stop`` for the stop phrase.
    """

    persona_id: str
    skill_id: str
    utterance_id: str
    text: str
    settings: SpeechSettings


def spoken_texts(persona: Persona, plan: list[PlanItem], settings: SpeechSettings | None = None) -> list[SpokenText]:
    """The distinct texts of ``plan`` (repeats once), in plan order, then the stop phrase.

    ``settings`` overrides the persona's speech settings (e.g. another engine for a trial).
    """
    speech = settings or persona.speech
    pid = persona.persona.id
    found: dict[str, SpokenText] = {}
    for item in plan:
        if item.utterance_id in found:
            continue
        found[item.utterance_id] = SpokenText(pid, item.skill_id, item.utterance_id, item.text, speech)
        for k, follow_up in enumerate(item.follow_ups, start=1):
            uid = f"{item.utterance_id}/followup-{k}"
            found[uid] = SpokenText(pid, item.skill_id, uid, follow_up, speech)
    found[STOP_ID] = SpokenText(pid, "-", STOP_ID, persona.session.stop_phrase, speech)
    return list(found.values())
