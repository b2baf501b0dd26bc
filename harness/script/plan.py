"""The plan of a run: every utterance a persona speaks, in order, as spoken."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from harness.script.models import BUILTIN_SKILL_ID, Expect, Persona, Utterance
from harness.script.wake import spoken_text

BUILTIN_SKILL_NAME = "Built-in"


class PlanItem(BaseModel):
    """One utterance of a run, at its place in the run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(description="0-based position in the run.")
    persona_id: str
    skill_id: str = Field(description=f"The skill's id, or '{BUILTIN_SKILL_ID}' for a built-in request.")
    skill_name: str
    utterance_id: str = Field(
        description="'<skill id>/<n>', n the utterance's 1-based place in its skill; unique in a persona."
    )
    text: str = Field(description="The text as spoken, wake word prefixed where it was missing.")
    follow_ups: list[str] = Field(default_factory=list)
    repeat: int = Field(description="1-based count of this utterance_id so far in the run.")
    round: int = Field(default=1, description="1-based pass through the script (session.repeats).")
    expect: Expect | None = None


def plan_seed(persona: Persona, seed: int | None = None) -> int:
    """Seed of a shuffled order: ``seed`` if given, else the script's, else one derived from the persona id."""
    if seed is not None:
        return seed
    if persona.session.seed is not None:
        return persona.session.seed
    return int.from_bytes(hashlib.sha256(persona.persona.id.encode()).digest()[:8], "big")


def _entries(persona: Persona) -> list[tuple[str, str, str, Utterance]]:
    """(skill id, skill name, utterance id, utterance) in the order written."""
    entries = [
        (skill.id, skill.name, f"{skill.id}/{n}", utterance)
        for skill in persona.skills
        for n, utterance in enumerate(skill.utterances, start=1)
    ]
    entries += [
        (BUILTIN_SKILL_ID, BUILTIN_SKILL_NAME, f"{BUILTIN_SKILL_ID}/{n}", utterance)
        for n, utterance in enumerate(persona.builtins, start=1)
    ]
    return entries


def build_plan(persona: Persona, seed: int | None = None) -> list[PlanItem]:
    """The run's utterances in speaking order.

    Each pass (``session.repeats``) speaks every utterance ``utterance.repeat`` times in a row;
    with ``order: shuffled`` each pass is shuffled anew by one generator seeded with
    :func:`plan_seed`, so the same seed always gives the same plan.
    """
    entries = _entries(persona)
    rng = random.Random(plan_seed(persona, seed))
    wake = persona.speech.wake_word
    counts: Counter[str] = Counter()
    items: list[PlanItem] = []
    for round_no in range(1, persona.session.repeats + 1):
        order = list(entries)
        if persona.session.order == "shuffled":
            rng.shuffle(order)
        for skill_id, skill_name, utterance_id, utterance in order:
            for _ in range(utterance.repeat):
                counts[utterance_id] += 1
                items.append(
                    PlanItem(
                        index=len(items),
                        persona_id=persona.persona.id,
                        skill_id=skill_id,
                        skill_name=skill_name,
                        utterance_id=utterance_id,
                        text=spoken_text(utterance.text, wake),
                        follow_ups=list(utterance.follow_ups),
                        repeat=counts[utterance_id],
                        round=round_no,
                        expect=utterance.expect,
                    )
                )
    return items
