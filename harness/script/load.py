"""Loading persona scripts: every error and warning of every file, with its place."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError, InputError
from harness.script.lint import lint
from harness.script.models import Persona
from harness.script.problems import problem
from harness.yamlsource import Source, read_source


class ScriptErrors(HarnessError):
    """One or more scripts are invalid; ``errors`` holds every problem, each with its place."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.errors:
            return "invalid script"
        more = len(self.errors) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''}; see `harness validate`)" if more else ""
        return f"{self.errors[0]}{suffix}"


@dataclass
class ScriptCheck:
    """The outcome of checking one script file (or one path that named no script)."""

    path: Path
    persona: Persona | None = None
    errors: list[InputError] = field(default_factory=list)
    warnings: list[InputError] = field(default_factory=list)
    source: Source | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def check_file(path: str | os.PathLike[str]) -> ScriptCheck:
    """Read, validate and lint one script. Never raises for bad content."""
    source = read_source(Path(path))
    check = ScriptCheck(source.path, errors=source.errors, source=source)
    if source.errors and source.data is None:
        return check
    found = [
        problem(Persona, source, e)
        for e in _validation_errors(source.data)
        if not any(tuple(e["loc"])[: len(r)] == r for r in source.refused)
    ]
    found += _duplicate_skill_ids(source)
    check.errors += [InputError(source.path, message, place) for place, message in found]
    check.errors.sort(key=lambda e: (e.place.line or 0, e.place.column or 0))
    if check.errors:
        return check
    check.persona = Persona.model_validate(source.data)
    check.warnings = [InputError(source.path, message, source.place(loc)) for loc, message in lint(check.persona)]
    return check


def _validation_errors(data: Any) -> list:
    try:
        Persona.model_validate(data)
    except ValidationError as exc:
        return exc.errors(include_url=False)
    return []


def _duplicate_skill_ids(source: Source) -> list:
    skills = source.data.get("skills") if isinstance(source.data, dict) else None
    if not isinstance(skills, list):
        return []
    found = []
    first: dict[str, int] = {}
    for i, skill in enumerate(skills):
        skill_id = skill.get("id") if isinstance(skill, dict) else None
        if not isinstance(skill_id, str):
            continue
        if skill_id in first:
            line = source.place(("skills", first[skill_id], "id")).line
            found.append((source.place(("skills", i, "id")), f"duplicate skill id '{skill_id}' (first at line {line})"))
        else:
            first[skill_id] = i
    return found


def script_paths(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[InputError]]:
    """Files named by ``paths`` (folders give their ``*.yaml``/``*.yml``), each once, and path errors."""
    files: list[Path] = []
    errors: list[InputError] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                found = script_files(path)
            except OSError as exc:
                errors.append(InputError(path, f"cannot list folder: {exc.strerror or exc}"))
                continue
            if not found:
                errors.append(InputError(path, "no *.yaml or *.yml scripts in this folder"))
        elif path.exists():
            found = [path]
        else:
            errors.append(InputError(path, "no such file or folder"))
            continue
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, errors


def check_paths(paths: Iterable[str | os.PathLike[str]]) -> list[ScriptCheck]:
    """Check every script named by ``paths``, including persona ids repeated across files."""
    files, path_errors = script_paths(paths)
    checks = [ScriptCheck(Path(e.path), errors=[e]) for e in path_errors]
    checks += [check_file(f) for f in files]
    owners: dict[str, ScriptCheck] = {}
    for check in checks:
        data = check.source.data if check.source else None
        persona = data.get("persona") if isinstance(data, dict) else None
        persona_id = persona.get("id") if isinstance(persona, dict) else None
        if not isinstance(persona_id, str):
            continue
        if persona_id in owners:
            first = owners[persona_id]
            place = check.source.place(("persona", "id"))
            first_place = first.source.place(("persona", "id"))
            check.errors.append(
                InputError(
                    check.path, f"duplicate persona id '{persona_id}' (also in {first.path}:{first_place})", place
                )
            )
            check.persona = None
        else:
            owners[persona_id] = check
    return checks


def load_persona(path: str | os.PathLike[str]) -> Persona:
    """The persona of one script; raises :class:`ScriptErrors` listing every problem."""
    return load_personas([path])[0]


def load_personas(paths: Iterable[str | os.PathLike[str]]) -> list[Persona]:
    """The personas of scripts and folders of scripts; raises :class:`ScriptErrors` listing every problem."""
    checks = check_paths(paths)
    errors = [e for check in checks for e in check.errors]
    if errors:
        raise ScriptErrors(errors)
    return [check.persona for check in checks if check.persona is not None]


def script_files(folder: Path) -> list[Path]:
    """The scripts of a folder: its ``*.yaml`` and ``*.yml`` files, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
