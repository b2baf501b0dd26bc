"""The layout shows the pipeline: no stage imports a later one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

STAGES = [
    "script",
    "speech",
    "audio",
    "capture",
    "rundir",
    "bench",
    "net",
    "classify",
    "correlate",
    "crawl",
    "ads",
    "report",
    "twin",
    "campaign",
]
# The run directory's file names: only harness/rundir/ may spell them.
RUN_FILES = re.compile(
    r"""["'](manifest\.json|events\.jsonl|truth\.jsonl|summary\.json|report\.html|twin\.log)["']"""
    r"""|/\s*["'](analysis|answers|capture|speech|scripts|\.twin)["']"""
)


def imported_stages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "harness" and len(parts) > 1 and parts[1] in STAGES:
                found.add(parts[1])
    return found


def test_no_stage_imports_a_later_stage(repo: Path) -> None:
    rank = {stage: i for i, stage in enumerate(STAGES)}
    violations = []
    for stage in STAGES:
        for path in sorted((repo / "harness" / stage).rglob("*.py")):
            later = [other for other in imported_stages(path) if rank[other] > rank[stage]]
            violations += [f"{path.relative_to(repo)} imports harness.{other}" for other in later]
    assert violations == []


def test_every_stage_is_a_package(repo: Path) -> None:
    assert all((repo / "harness" / stage / "__init__.py").is_file() for stage in STAGES)


def test_only_the_run_directory_module_spells_the_run_directorys_file_names(repo: Path) -> None:
    found = []
    for path in sorted((repo / "harness").rglob("*.py")):
        if path.parent.name == "rundir":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            # strings in code only: help texts and docstrings may name the files for the reader
            code = line.split("#", 1)[0]
            if RUN_FILES.search(code) and "help=" not in code and "description=" not in code:
                found.append(f"{path.relative_to(repo)}:{number}: {line.strip()}")
    assert found == []
