"""The persona script format: one persona per YAML file, modelled with pydantic.

Models are strict (YAML ``yes`` is not a string, ``"175"`` is not a number) and forbid unknown
keys, so every typo in a script is an error with a position rather than a silent default.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

#: Identifiers of personas and skills: lowercase, safe in file names and URLs.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
#: Skill id reserved for the built-in requests of a persona (``PlanItem.skill_id``).
BUILTIN_SKILL_ID = "builtin"

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PersonaInfo(_Model):
    """Who the persona is."""

    id: Slug = Field(description="Unique id of the persona (lowercase letters, digits, '-', '_').")
    name: Text = Field(description="Display name, e.g. 'Health & Fitness'.")
    category: Text = Field(description="Interest category the persona stands for (a skill store category).")
    description: str = Field(default="", max_length=2000, description="Free text: what the persona is for.")
    control: bool = Field(
        default=False,
        description="A control persona enables no skills (it idles or says only built-in requests); "
        "interest personas are compared against it.",
    )


class SpeechSettings(_Model):
    """How utterances are synthesised."""

    engine: Literal["espeak", "pyttsx3"] = Field(
        default="espeak", description="Speech engine: 'espeak' (espeak-ng command line) or 'pyttsx3'."
    )
    voice: Text = Field(default="en-us", description="Voice of the engine (see `harness voices`).")
    rate: int = Field(default=175, ge=80, le=450, description="Speaking rate in words per minute.")
    volume: float = Field(default=1.0, ge=0.0, le=1.0, description="Volume from 0 (silent) to 1 (full).")
    wake_word: Text = Field(
        default="Alexa",
        max_length=40,
        description="Wake word; utterances not starting with it are spoken as '<wake word>, <text>'.",
    )


class SessionSettings(_Model):
    """Timing and order of a run."""

    gap_s: float = Field(
        default=5.0, ge=0.0, le=3600.0, description="Pause after an answer before the next utterance, in seconds."
    )
    answer_timeout_s: float = Field(
        default=8.0, gt=0.0, le=600.0, description="How long to wait for the answer to start, in seconds."
    )
    max_answer_s: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="Longest answer before the stop phrase is spoken, in seconds."
    )
    min_silence_s: float = Field(default=1.0, ge=0.0, le=60.0, description="Silence that ends an answer, in seconds.")
    stop_phrase: Phrase = Field(default="Alexa, stop", description="Said when an answer runs longer than max_answer_s.")
    order: Literal["as_written", "shuffled"] = Field(
        default="as_written", description="Speak utterances in file order, or shuffled (reproducibly, see seed)."
    )
    seed: int | None = Field(
        default=None,
        description="Seed of the shuffle; without one the order derives from the persona id "
        "(the command line's --seed overrides both).",
    )
    repeats: int = Field(default=1, ge=1, le=1000, description="How many times the whole script is run.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra tries of an utterance that got no answer.")


class Expect(_Model):
    """A hint of the expected answer, used to check that the skill (not Alexa) answered."""

    keywords: list[Phrase] = Field(default_factory=list, description="Words the answer should contain.")
    regex: str | None = Field(
        default=None, max_length=500, description="A Python regular expression the answer should match."
    )

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
        return value


class Utterance(_Model):
    """One request spoken to the speaker, with what to say after its answer."""

    text: Text = Field(description="What to say; the wake word is prefixed when missing.")
    expect: Expect | None = Field(default=None, description="Optional hint of the expected answer.")
    follow_ups: list[Phrase] = Field(
        default_factory=list, description="Said after the answer, in the same session (multi-turn), without wake word."
    )
    repeat: int = Field(default=1, ge=1, le=100, description="How many times in a row the utterance is spoken.")


class Skill(_Model):
    """A skill the persona enables, and what it says to it."""

    id: Slug = Field(description="Id of the skill in this persona (lowercase letters, digits, '-', '_').")
    name: Text = Field(description="The skill's name in the store.")
    invocation: Text = Field(description="The skill's invocation name, as spoken ('ask <invocation> ...').")
    store_id: Text | None = Field(default=None, description="The skill's store id (ASIN, e.g. B01CH4BP28).")
    utterances: list[Utterance] = Field(min_length=1, description="What the persona says to the skill.")

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == BUILTIN_SKILL_ID:
            raise ValueError(f"'{BUILTIN_SKILL_ID}' is reserved for the persona's built-in requests")
        return value


class Persona(_Model):
    """A persona script: one file, one persona."""

    persona: PersonaInfo = Field(description="Who the persona is.")
    speech: SpeechSettings = Field(default_factory=SpeechSettings, description="How utterances are synthesised.")
    session: SessionSettings = Field(default_factory=SessionSettings, description="Timing and order of a run.")
    skills: list[Skill] = Field(
        default_factory=list,
        validate_default=True,
        description="Skills the persona enables; a control persona may have none.",
    )
    builtins: list[Utterance] = Field(
        default_factory=list, description="Built-in requests not tied to a skill (e.g. 'Alexa, what time is it?')."
    )

    @field_validator("skills")
    @classmethod
    def _skills_unless_control(cls, value: list[Skill], info: ValidationInfo) -> list[Skill]:
        persona_info = info.data.get("persona")
        if isinstance(persona_info, PersonaInfo) and not persona_info.control and not value:
            raise ValueError("a persona that is not a control needs at least one skill")
        return value


def persona_json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a persona script, for editors and other tools."""
    schema = Persona.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "harness persona script",
        "description": "One persona per YAML file: who it is, how it speaks, which skills it enables "
        "and what it says to them. Check a file with `harness validate FILE`.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
