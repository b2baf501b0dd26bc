"""``manifest.json``: what a run was made of (host, versions, scripts, devices, settings, clock).

The manifest is a snapshot rewritten atomically when a run starts, resumes and ends; the event
log is the record of what happened. A resume reads the manifest back for the run's plan inputs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import InputError
from harness.files import PRIVATE_FILE, atomic_write_text
from harness.rundir.document import read_document
from harness.rundir.events import CaptureFileInfo
from harness.rundir.layout import RunDir

FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClockStep(_Model):
    at_wall_ns: int = Field(description="when the step was seen, UTC epoch ns")
    step_ns: int = Field(description="how far the wall clock jumped against the monotonic clock")


class ClockStatus(_Model):
    """What the host said about its clock synchronisation when the run (re)started."""

    source: str = Field(description='"chrony", "timedatectl" or "unknown"')
    synchronized: bool | None = None
    detail: dict[str, str] = Field(default_factory=dict)


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
    """What the run was asked to do (``harness run`` options); a resume takes what it is not given from here."""

    retries: int | None = Field(description="--retries (None: each script's session.retries)")
    marker: str | None = Field(description="--marker HOST:PORT the sync markers go to (None: no markers)")
    transcribe: bool = Field(description="--transcribe: answers transcribed offline")
    capture: str | None = Field(description="--capture: the tcpdump target the bench ran (None: none, or the twin's)")
    capture_device: str | None = Field(description="the speaker's address the capture keeps (the twin's for --twin)")
    capture_filter: str | None = Field(None, description="--capture-filter: the extra BPF filter")
    capture_rotate_mb: int | None = Field(None, description="--capture-rotate-mb: a new file after this many MB")
    capture_rotate_s: int | None = Field(None, description="--capture-rotate-s: a new file after this many seconds")
    capture_tail_s: float = Field(description="seconds captured after the last answer")
    device_wait_s: float = Field(description="how long a lost device is waited for before the run stops")
    twin: bool = Field(False, description="--twin: run against the digital twin, which a resume starts again")
    twin_config: str | None = Field(None, description="--twin-config (None: the shipped configuration)")
    quiet_lead_s: float = Field(
        0.0, description="with --twin: seconds of background captured before the first utterance"
    )


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


def write_manifest(run: RunDir, manifest: Manifest) -> None:
    """Replace the run's manifest atomically (private: it names devices and hosts)."""
    atomic_write_text(run.manifest, manifest.model_dump_json(indent=2) + "\n", PRIVATE_FILE)


def read_manifest(run: RunDir) -> Manifest:
    """The run's manifest; one line naming the file when it is missing or damaged."""
    if not run.manifest.is_file():
        raise InputError(run.manifest, "no manifest: not a run directory")
    return read_document(run.manifest, Manifest, "manifest")


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``manifest.json``."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **Manifest.model_json_schema()}
