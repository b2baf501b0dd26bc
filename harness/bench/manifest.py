"""``manifest.json``: what a run was made of (host, versions, scripts, devices, settings, clock).

The manifest is a snapshot rewritten atomically when a run starts, resumes and ends; the event
log is the record of what happened. A resume reads the manifest back for the run's plan inputs.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import __version__
from harness.bench.clock import ClockStatus, ClockStep
from harness.bench.events import CaptureFileInfo
from harness.errors import InputError
from harness.files import PRIVATE_FILE, atomic_write_text

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HostInfo(_Model):
    hostname: str
    os: str
    kernel: str
    machine: str
    python: str
    python_implementation: str


class ScriptInfo(_Model):
    path: str = Field(description="the copy in the run directory the run (and a resume) reads")
    source: str = Field(description="where it was copied from")
    sha256: str
    persona_id: str
    seed: int | None = Field(description="the --seed the plan was built with (None: the script's own)")


class DeviceInfo(_Model):
    spec: str = Field(description="as given on the command line")
    name: str = Field(description="the device it resolved to")
    details: dict[str, Any] = Field(default_factory=dict)


class Settings(_Model):
    retries: int | None = Field(description="--retries (None: each script's session.retries)")
    marker: str | None
    transcribe: bool
    capture: str | None
    capture_device: str | None
    capture_tail_s: float
    device_wait_s: float = Field(description="how long a lost device is waited for before the run stops")


class ClockInfo(_Model):
    status: ClockStatus
    steps: list[ClockStep] = Field(default_factory=list, description="wall-clock steps seen during the run")


class Segment(_Model):
    """One process's share of the run: the first start, then each resume."""

    started_wall_ns: int
    first_seq: int
    argv: list[str]


class Manifest(_Model):
    format: int = FORMAT_VERSION
    run_id: str
    status: Literal["running", "interrupted", "failed", "finished"]
    created_wall_ns: int
    updated_wall_ns: int
    host: HostInfo
    versions: dict[str, str | None]
    scripts: list[ScriptInfo]
    plan: list[str] = Field(description="utterance id of each plan item, in run order (persona_id:utterance_id)")
    backend: str
    output_device: DeviceInfo
    input_device: DeviceInfo | None
    settings: Settings
    clock: ClockInfo
    captures: list[CaptureFileInfo] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)


def host_info() -> HostInfo:
    return HostInfo(
        hostname=socket.gethostname(),
        os=platform.platform(),
        kernel=platform.release(),
        machine=platform.machine(),
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
    )


def versions() -> dict[str, str | None]:
    """Versions of harness, the Python packages it runs on, PortAudio and espeak-ng (None: absent)."""
    found: dict[str, str | None] = {"harness": __version__}
    for dist in ("numpy", "scipy", "pydantic", "sounddevice", "pyaudio", "pocketsphinx", "rich"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    found["portaudio"] = _portaudio_version()
    found["espeak-ng"] = _espeak_version()
    return found


def _portaudio_version() -> str | None:
    try:
        import sounddevice
    except (ImportError, OSError):
        return None
    return sounddevice.get_portaudio_version()[1]


def _espeak_version() -> str | None:
    if shutil.which("espeak-ng") is None:
        return None
    try:
        done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def write_manifest(run_dir: Path, manifest: Manifest) -> Path:
    """Replace ``RUN_DIR/manifest.json`` atomically (private: it names devices and hosts)."""
    text = manifest.model_dump_json(indent=2) + "\n"
    return atomic_write_text(Path(run_dir) / MANIFEST_NAME, text, PRIVATE_FILE)


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST_NAME
    if not path.is_file():
        raise InputError(path, "no manifest: not a run directory")
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(path, f"not a valid manifest: {where}: {first['msg']}") from None
