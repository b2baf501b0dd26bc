"""The plan of a bench run: several persona scripts, one numbering, and their file hashes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.files import sha256_file
from harness.rundir.layout import RunDir
from harness.rundir.manifest import Manifest
from harness.script import Persona, PlanItem, build_plan, load_persona, script_paths
from harness.script.load import ScriptErrors


@dataclass(frozen=True)
class Script:
    source: Path
    persona: Persona
    sha256: str


@dataclass(frozen=True)
class Plan:
    scripts: list[Script]
    items: list[PlanItem]

    def persona(self, item: PlanItem) -> Persona:
        return next(s.persona for s in self.scripts if s.persona.persona.id == item.persona_id)

    def keys(self) -> list[str]:
        return [plan_key(item) for item in self.items]


def plan_key(item: PlanItem) -> str:
    return f"{item.persona_id}:{item.utterance_id}#{item.repeat}"


def load_plan(paths: list[Path], seed: int | None) -> Plan:
    """Load scripts (files or folders) and build one run plan, personas in the order given."""
    files, errors = script_paths(paths)
    if errors:
        raise ScriptErrors(errors)
    scripts = [Script(path, load_persona(path), sha256_file(path)) for path in files]
    ids = [s.persona.persona.id for s in scripts]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise HarnessError(f"persona id {duplicates[0]!r} appears in more than one script")
    items: list[PlanItem] = []
    for script in scripts:
        for item in build_plan(script.persona, seed):
            items.append(item.model_copy(update={"index": len(items)}))
    return Plan(scripts, items)


def run_plan(run: RunDir, manifest: Manifest) -> Plan:
    """The plan of a run, from its copies of the scripts and the seed it ran with."""
    copies = [run.resolve(s.path) for s in manifest.scripts]
    return load_plan(copies, manifest.scripts[0].seed if manifest.scripts else None)
