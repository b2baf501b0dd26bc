"""Persona scripts: the YAML format, loading with exact positions, lint, and the run plan."""

from harness.script.lint import MAX_SPOKEN_S, estimated_seconds, lint
from harness.script.load import (
    ScriptCheck,
    ScriptErrors,
    check_file,
    check_paths,
    load_persona,
    load_personas,
    script_paths,
)
from harness.script.models import (
    BUILTIN_SKILL_ID,
    Expect,
    Persona,
    PersonaInfo,
    SessionSettings,
    Skill,
    SpeechSettings,
    Utterance,
    persona_json_schema,
)
from harness.script.plan import PlanItem, build_plan, plan_seed
from harness.script.wake import spoken_text, starts_with_wake_word

__all__ = [
    "BUILTIN_SKILL_ID",
    "MAX_SPOKEN_S",
    "Expect",
    "Persona",
    "PersonaInfo",
    "PlanItem",
    "ScriptCheck",
    "ScriptErrors",
    "SessionSettings",
    "Skill",
    "SpeechSettings",
    "Utterance",
    "build_plan",
    "check_file",
    "check_paths",
    "estimated_seconds",
    "lint",
    "persona_json_schema",
    "load_persona",
    "load_personas",
    "plan_seed",
    "script_paths",
    "spoken_text",
    "starts_with_wake_word",
]
