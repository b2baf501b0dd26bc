"""What the ads stage needs from bench run directories: each persona's first utterance onset,
and which persona is the control.

Read through the run directory's own readers (:mod:`harness.rundir`): the manifest names the
personas and their script copies, the copies say which persona is the control, and the first
utterance's DAC onset (``utterance_ended.onset_wall_ns``) starts the persona's "after".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.rundir.events import UtteranceEnded, read_events
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest
from harness.script import load_persona


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
        _read_run(RunDir.existing(folder), facts)
    return facts


def _read_run(run: RunDir, facts: RunFacts) -> None:
    manifest = read_manifest(run)
    for script in manifest.scripts:
        try:
            control = load_persona(run.resolve(script.path)).persona.control
        except (HarnessError, OSError):
            facts.warnings.append(
                f"{run.resolve(script.path)}: the run's copy of the script cannot be read; "
                f"{script.persona_id} is not taken as a control"
            )
            control = False
        facts.control[script.persona_id] = facts.control.get(script.persona_id, False) or control
    onsets: dict[str, int] = {}
    for event in read_events(run.events).events:
        if isinstance(event, UtteranceEnded):
            onsets[event.persona_id] = min(event.onset_wall_ns, onsets.get(event.persona_id, event.onset_wall_ns))
    if not onsets:
        facts.warnings.append(f"{run.root}: no utterance was spoken; its personas get no before/after split")
    for persona_id, onset in onsets.items():
        known = facts.first_utterance_ns.get(persona_id)
        facts.first_utterance_ns[persona_id] = onset if known is None else min(known, onset)
