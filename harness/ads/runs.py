"""What the ads stage needs from bench run directories: each persona's first utterance onset,
and which persona is the control.

Read leniently from the raw files (``manifest.json``, ``events.jsonl`` and the script copies the
manifest lists), so runs logged by older or newer versions still serve.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError, Place
from harness.jsonl import read_jsonl

@dataclass
class RunFacts:
    """Per persona id: the earliest utterance onset (UTC epoch ns) and whether it is a control."""

    first_utterance_ns: dict[str, int] = field(default_factory=dict)
    control: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def read_runs(folders: Iterable[str | Path]) -> RunFacts:
    """Merge the facts of several run directories (earliest onset wins across runs)."""
    facts = RunFacts()
    for folder in folders:
        _read_run(Path(folder), facts)
    return facts


def _read_run(folder: Path, facts: RunFacts) -> None:
    manifest_path, events_path = folder / "manifest.json", folder / "events.jsonl"
    if not folder.is_dir() or not (manifest_path.exists() or events_path.exists()):
        raise InputError(folder, "not a run directory (no manifest.json or events.jsonl)")
    manifest = _manifest(manifest_path) if manifest_path.exists() else {}
    default_persona = _single_persona(manifest)
    for persona_id, control in _controls(folder, manifest).items():
        facts.control[persona_id] = facts.control.get(persona_id, False) or control
    onsets = _first_onsets(events_path, default_persona) if events_path.exists() else {}
    if not onsets:
        facts.warnings.append(f"{folder}: no utterance_started event; its personas get no before/after split")
    for persona_id, onset in onsets.items():
        known = facts.first_utterance_ns.get(persona_id)
        facts.first_utterance_ns[persona_id] = onset if known is None else min(known, onset)


def _manifest(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc.msg}", Place(line=exc.lineno, column=exc.colno)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None
    if not isinstance(value, dict):
        raise InputError(path, "a manifest must be a JSON object", Place(line=1))
    return value


def _persona_ids(manifest: dict[str, Any]) -> list[str]:
    ids = [str(item["persona_id"]) for item in manifest.get("scripts", []) if isinstance(item, dict) and "persona_id" in item]
    if isinstance(manifest.get("persona_id"), str):
        ids.append(manifest["persona_id"])
    persona = manifest.get("persona")
    if isinstance(persona, str):
        ids.append(persona)
    elif isinstance(persona, dict) and isinstance(persona.get("id"), str):
        ids.append(persona["id"])
    return list(dict.fromkeys(ids))


def _single_persona(manifest: dict[str, Any]) -> str | None:
    ids = _persona_ids(manifest)
    return ids[0] if len(ids) == 1 else None


def _controls(folder: Path, manifest: dict[str, Any]) -> dict[str, bool]:
    """Which personas of a run are marked control: in the manifest, else in the script copies."""
    found: dict[str, bool] = {}
    persona = manifest.get("persona")
    if isinstance(persona, dict) and isinstance(persona.get("id"), str) and "control" in persona:
        found[persona["id"]] = bool(persona["control"])
    for item in manifest.get("scripts", []):
        if not isinstance(item, dict) or "persona_id" not in item:
            continue
        persona_id = str(item["persona_id"])
        if "control" in item:
            found[persona_id] = bool(item["control"])
        elif isinstance(item.get("path"), str):
            control = _script_control(folder / item["path"])
            if control is not None:
                found[persona_id] = control
    return found


def _script_control(path: Path) -> bool | None:
    try:
        script = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # a missing or damaged copy only means the manifest cannot name the control
    info = script.get("persona") if isinstance(script, dict) else None
    return bool(info.get("control", False)) if isinstance(info, dict) else None


def _first_onsets(path: Path, default_persona: str | None) -> dict[str, int]:
    """Earliest onset of an ``utterance_started`` per persona: its own ``onset_wall_ns``, else the
    DAC onset of the matching ``utterance_ended``, else the time it was logged (``t_wall_ns``)."""
    events = list(read_jsonl(path))
    ended = {
        event.get("started_seq"): event["onset_wall_ns"]
        for event in events
        if event.get("event") == "utterance_ended" and isinstance(event.get("onset_wall_ns"), int)
    }
    first: dict[str, int] = {}
    for event in events:
        if event.get("event") != "utterance_started":
            continue
        persona_id = event.get("persona_id", default_persona)
        candidates = (event.get("onset_wall_ns"), ended.get(event.get("seq")), event.get("t_wall_ns"))
        onset = next((value for value in candidates if isinstance(value, int)), None)
        if persona_id is None or onset is None:
            continue
        first[str(persona_id)] = min(onset, first.get(str(persona_id), onset))
    return first
