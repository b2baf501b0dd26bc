"""The run record: the run directory a bench process writes, its manifest, its event log, its clock.

A new run copies its scripts and writes its manifest; a resume checks the copies and reads the
manifest back. Either way the record then opens the event log, logs the segment's start and
keeps the manifest current (status, clock steps, capture files).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness import __version__
from harness.audio.devices import DeviceInfo as AudioDevice
from harness.bench.clock import ClockPair, clock_pair, clock_status, step_between
from harness.bench.options import RunOptions
from harness.bench.plan import Plan, load_plan, run_plan
from harness.bench.resume import RunState, run_state
from harness.defaults import default
from harness.errors import InputError
from harness.files import PRIVATE_FILE, atomic_write_bytes, sha256_file
from harness.rundir.events import CaptureFileInfo, CaptureStopped, ClockSample, E, EventLog, read_events
from harness.rundir.layout import RunDir, capture_siblings, new_run_id
from harness.rundir.manifest import (
    ClockInfo,
    ClockStep,
    DeviceInfo,
    HostInfo,
    Manifest,
    ScriptInfo,
    Segment,
    Settings,
    read_manifest,
    write_manifest,
)

if TYPE_CHECKING:
    from harness.capture import CaptureFile

CLOCK_SAMPLE_EVERY_S = 30.0
RESERVE_BYTES = 1 << 20  # room for the last events and manifests of a run whose disk filled up


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


def settings_of(options: RunOptions) -> Settings:
    """The manifest's record of the options."""
    return Settings(
        retries=options.retries,
        marker=f"{options.marker[0]}:{options.marker[1]}" if options.marker else None,
        transcribe=options.transcribe,
        capture=options.capture,
        capture_device=options.capture_device,
        capture_filter=options.capture_filter,
        capture_rotate_mb=options.capture_rotate_mb,
        capture_rotate_s=options.capture_rotate_s,
        capture_tail_s=options.tail_s,
        device_wait_s=options.device_wait_s,
        twin=options.twin,
        twin_config=str(options.twin_config) if options.twin_config else None,
        quiet_lead_s=options.lead_s,
    )


def device_info(spec: str | None, device: AudioDevice | None) -> DeviceInfo | None:
    """The manifest's record of a device: the spec given and what it resolved to."""
    if spec is None or device is None:
        return None
    return DeviceInfo(spec=spec, name=device.name, details=dataclasses.asdict(device))


class RunRecord:
    """The run directory of one bench process: a new run (:meth:`new`) or a resumed one (:meth:`reopen`).

    Nothing is written until :meth:`begin`; then every event goes through :meth:`emit` and the
    manifest is rewritten on each change of status, clock or captures.
    """

    def __init__(self, run: RunDir, plan: Plan, manifest: Manifest | None) -> None:
        self.run = run
        self.plan = plan
        self.resuming = manifest is not None
        self.run_id = manifest.run_id if manifest else run.root.name
        self._manifest = manifest
        self._log: EventLog | None = None
        self._clock_last: ClockPair | None = None
        self._clock_steps: list[ClockStep] = list(manifest.clock.steps) if manifest else []
        self._captures: list[CaptureFileInfo] = list(manifest.captures) if manifest else []
        self.recovered: list[CaptureFileInfo] = []  # capture files a crash left open, closed by begin()
        self.torn_lines = 0

    @classmethod
    def new(cls, scripts: list[Path], seed: int | None, runs_dir: Path) -> RunRecord:
        """A new run of ``scripts`` under ``runs_dir`` (its plan loaded and checked)."""
        return cls(RunDir(runs_dir / new_run_id()), load_plan(scripts, seed), None)

    @classmethod
    def reopen(cls, folder: Path) -> RunRecord:
        """An existing run, its scripts checked against the manifest (one line naming what differs)."""
        run = RunDir.existing(folder)
        manifest = read_manifest(run)
        copies = [run.resolve(s.path) for s in manifest.scripts]
        for info, copy in zip(manifest.scripts, copies, strict=True):
            if not copy.is_file() or sha256_file(copy) != info.sha256:
                raise InputError(copy, "the run's copy of this script is missing or changed")
        plan = run_plan(run, manifest)
        if plan.keys() != manifest.plan:
            raise InputError(run.manifest, "the scripts no longer give the run's plan")
        return cls(run, plan, manifest)

    @property
    def manifest(self) -> Manifest:
        assert self._manifest is not None, "begin() first"
        return self._manifest

    @property
    def next_seq(self) -> int:
        return self._log.next_seq if self._log else 0

    # ----- the segment ------------------------------------------------------------------------

    def begin(self, options: RunOptions, output: AudioDevice, input_: AudioDevice | None) -> RunState | None:
        """Create (or reopen) the folders, open the log and record this segment; returns where a
        resumed run stands (None for a new run). A resumed run that had finished (killed while
        its capture was closing) gets only its captures recovered (:attr:`recovered`), no segment."""
        run = self.run
        run.create(run.answers, run.speech)
        state = None
        if self._manifest is None:
            self._manifest = self._new_manifest(options)
        else:
            logged = read_events(run.events)
            state = run_state(logged.events, len(self.plan.items))
            self.torn_lines = logged.torn_lines
        self.recovered = self._recover_captures()
        self._log = EventLog(run.events, self.run_id)
        if self.recovered:
            self.emit(CaptureStopped(files=self.recovered))
        if state is not None and state.finished:
            self.write_manifest(self.manifest.status)
            return state
        atomic_write_bytes(run.reserve, bytes(RESERVE_BYTES), PRIVATE_FILE)
        segment = Segment(started_wall_ns=time.time_ns(), first_seq=self._log.next_seq, argv=list(sys.argv))
        self._manifest = self.manifest.model_copy(
            update={
                "segments": [*self.manifest.segments, segment],
                "backend": options.backend or default.backend,
                "output_device": device_info(options.output_device, output),
                "input_device": device_info(options.input_device, input_),
                "settings": settings_of(options),
                "clock": ClockInfo(status=clock_status(), steps=self._clock_steps),
            }
        )
        self.write_manifest("running")
        return state

    def _new_manifest(self, options: RunOptions) -> Manifest:
        self.run.create(self.run.scripts)
        infos = []
        for n, script in enumerate(self.plan.scripts, start=1):
            copy = self.run.script_copy(n, script.source)
            atomic_write_bytes(copy, script.source.read_bytes(), PRIVATE_FILE)
            if sha256_file(copy) != script.sha256:
                raise InputError(script.source, "the script changed while the run was starting")
            infos.append(
                ScriptInfo(
                    path=self.run.relative(copy),
                    source=str(script.source),
                    sha256=script.sha256,
                    persona_id=script.persona.persona.id,
                    seed=options.seed,
                )
            )
        now = time.time_ns()
        return Manifest(
            run_id=self.run_id,
            status="running",
            created_wall_ns=now,
            updated_wall_ns=now,
            host=host_info(),
            versions=versions(),
            scripts=infos,
            plan=self.plan.keys(),
            backend=options.backend or default.backend,
            output_device=DeviceInfo(spec="", name=""),
            input_device=None,
            settings=settings_of(options),
            clock=ClockInfo(status=clock_status()),
        )

    def emit(self, event: E) -> E:
        """Log one event (see :mod:`harness.rundir.events`)."""
        assert self._log is not None, "begin() first"
        return self._log.emit(event)

    def state(self) -> RunState:
        """Where the run stands, from its log."""
        return run_state(read_events(self.run.events).events, len(self.plan.items))

    def write_manifest(self, status: str) -> None:
        self._manifest = self.manifest.model_copy(
            update={
                "status": status,
                "updated_wall_ns": time.time_ns(),
                "clock": ClockInfo(status=self.manifest.clock.status, steps=self._clock_steps),
                "captures": self._captures,
            }
        )
        write_manifest(self.run, self.manifest)

    # ----- the captures -----------------------------------------------------------------------

    def capture_opened(
        self, paths: list[Path], interface: str | None, started_ns: int | None, synthetic: bool = False
    ) -> list[CaptureFileInfo]:
        """List a capture's files in the manifest now (state ``writing``), so a crash at any later
        moment leaves them listed; returns the entries to hand to :meth:`capture_closed`."""
        opened = [
            CaptureFileInfo(
                path=self.run.relative(p),
                state="writing",
                interface=interface,
                started_ns=started_ns,
                synthetic=synthetic,
            )
            for p in paths
        ]
        self._captures.extend(opened)
        self.write_manifest(self.manifest.status)
        return opened

    def capture_file(self, file: CaptureFile, synthetic: bool = False) -> CaptureFileInfo:
        """The manifest's entry for a closed capture file."""
        return CaptureFileInfo(
            path=self.run.relative(file.path),
            sha256=file.sha256,
            bytes=file.bytes,
            interface=file.interface,
            started_ns=file.started_ns,
            stopped_ns=file.stopped_ns,
            synthetic=synthetic,
        )

    def capture_closed(self, opened: list[CaptureFileInfo], files: list[CaptureFileInfo]) -> None:
        """Replace a capture's ``writing`` entries by its final files (hashed)."""
        done = {f.path for f in files}
        gone = {o.path for o in opened}
        self._captures = [c for c in self._captures if c.path not in gone and c.path not in done] + files
        self.write_manifest(self.manifest.status)

    def _recover_captures(self) -> list[CaptureFileInfo]:
        """On resume: the files of captures a crash left ``writing``, hashed as they are (with the
        files a rotating capture added under the same name); returns the entries changed."""
        changed, kept = [], []
        for entry in self._captures:
            if entry.state != "writing":
                kept.append(entry)
                continue
            found = capture_siblings(self.run.resolve(entry.path))
            if not found:
                changed.append(entry.model_copy(update={"state": "missing"}))
            for path in found:
                if any(k.path == self.run.relative(path) for k in kept + changed):
                    continue
                stat = path.stat()
                changed.append(
                    entry.model_copy(
                        update={
                            "path": self.run.relative(path),
                            "state": "recovered",
                            "sha256": sha256_file(path),
                            "bytes": stat.st_size,
                            "stopped_ns": stat.st_mtime_ns,
                        }
                    )
                )
        self._captures = kept + changed
        return changed

    def release_reserve(self) -> None:
        """Free the space held since :meth:`begin` (the disk filled up: what follows must still be recorded)."""
        self.run.reserve.unlink(missing_ok=True)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
        self.release_reserve()

    # ----- the clock --------------------------------------------------------------------------

    def clock_sample(self) -> None:
        """Log both clocks, and a step of the wall clock since the last sample."""
        pair = clock_pair()
        step = step_between(self._clock_last, pair) if self._clock_last else None
        if step is not None:
            self._clock_steps.append(ClockStep(at_wall_ns=pair.wall_ns, step_ns=step))
        self._clock_last = pair
        self.emit(ClockSample(offset_ns=pair.offset_ns, step_ns=step))

    def clock_sample_due(self) -> None:
        """:meth:`clock_sample` when the last one is older than :data:`CLOCK_SAMPLE_EVERY_S`."""
        if self._clock_last is None or time.monotonic_ns() - self._clock_last.mono_ns > CLOCK_SAMPLE_EVERY_S * 1e9:
            self.clock_sample()
