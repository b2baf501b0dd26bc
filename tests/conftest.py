"""Shared test fixtures: the reference data beside the checkout, and tool checks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def echo_captures() -> Path:
    """The real Echo captures in ../shared/data/echo-captures (skipped where absent)."""
    folder = SHARED / "data" / "echo-captures"
    if not folder.is_dir():
        pytest.skip(f"reference captures not present ({folder})")
    return folder


def require_tool(name: str) -> str:
    """Path of an external program, or skip the test naming what is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
