"""Shared test fixtures: the reference data beside the checkout, and tool checks."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HARNESS_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Classification memos of this session (and its subprocesses) kept apart from the user's."""
    folder = tmp_path_factory.mktemp("cache")
    saved = os.environ.get("HARNESS_CACHE_DIR")
    os.environ["HARNESS_CACHE_DIR"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("HARNESS_CACHE_DIR", None)
    else:
        os.environ["HARNESS_CACHE_DIR"] = saved


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


@dataclass(frozen=True)
class Lab:
    """A running virtual audio lab (see harness.audio.lab) and its device names."""

    base: Path
    env: dict[str, str]
    output: str = "harness_out"
    monitor: str = "harness_out_monitor"
    answer_output: str = "speaker_answer"
    mic: str = "virtual_mic"


@contextmanager
def running_lab(base: Path) -> Iterator[Lab]:
    """Start a lab in ``base``, point this process at it, and undo both afterwards."""
    require_tool("pulseaudio")
    from harness.audio.lab import lab_down, lab_up

    status = lab_up(base)
    env = status.environment()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield Lab(base=base, env=env)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        lab_down(base)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A private PulseAudio lab for this test session (skipped where pulseaudio is missing)."""
    with running_lab(tmp_path_factory.mktemp("lab")) as running:
        yield running


def test_manifest(run_id: str, **changes: object):
    """A valid manifest of a run made by a test (no devices; fields in ``changes`` replace the defaults)."""
    from harness.bench.record import host_info
    from harness.rundir.manifest import ClockInfo, ClockStatus, DeviceInfo, Manifest, Settings

    settings = Settings(
        retries=None,
        marker=None,
        transcribe=False,
        capture=None,
        capture_device=None,
        capture_tail_s=0.0,
        device_wait_s=1.0,
    )
    fields: dict[str, object] = {
        "run_id": run_id,
        "status": "finished",
        "created_wall_ns": 1,
        "updated_wall_ns": 1,
        "host": host_info(),
        "versions": {},
        "scripts": [],
        "plan": [],
        "backend": "test",
        "output_device": DeviceInfo(spec="-", name="-"),
        "input_device": None,
        "settings": settings,
        "clock": ClockInfo(status=ClockStatus(source="unknown")),
    }
    return Manifest(**{**fields, **changes})


test_manifest.__test__ = False  # a helper, not a test
