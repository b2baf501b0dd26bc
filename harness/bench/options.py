"""What ``harness run`` was asked to do; fixed once parsed (a resume derives a new set)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.markers import parse_target
from harness.defaults import default
from harness.errors import HarnessError, InputError
from harness.rundir.layout import RunDir
from harness.rundir.manifest import Manifest


@dataclass(frozen=True)
class RunOptions:
    """What ``harness run`` was asked to do."""

    scripts: list[Path] = field(default_factory=list)
    """Persona scripts (files or folders); empty on a resume, which reads the run's copies."""
    output_device: str | None = None
    """The bench speaker: device index or name."""
    input_device: str | None = None
    """The microphone for the answers; None: no listening."""
    backend: str | None = None
    """Audio back end; None: the run's (on a resume) or ``default.backend``."""
    runs_dir: Path = default.runs_dir
    """Where a new run directory is created."""
    seed: int | None = None
    """Seed of shuffled scripts; None: each script's own."""
    marker: tuple[str, int] | None = None
    """HOST and PORT the UDP sync markers go to."""
    retries: int | None = None
    """Tries after no answer; None: each script's ``session.retries``."""
    transcribe: bool = False
    """Transcribe the answers offline."""
    capture: str | None = None
    """Capture spec (local interface or ``ssh://``) for tcpdump during the run."""
    capture_device: str | None = None
    """The speaker's address, to filter the capture."""
    capture_filter: str | None = None
    """An extra BPF filter for the capture (checked by ``tcpdump -d``)."""
    capture_rotate_mb: int | None = None
    """Start a new capture file after this many megabytes (10^6 bytes); None: one file."""
    capture_rotate_s: int | None = None
    """Start a new capture file after this many seconds; None: one file."""
    capture_tail_s: float | None = None
    """Seconds the capture goes on after the last answer; None: the run's on a resume, else
    ``default.capture_tail_s`` (with ``twin``: ``default.twin_quiet_s``). See :attr:`tail_s`."""
    device_wait_s: float = default.device_wait_s
    """How long a lost device is waited for."""
    calibration_s: float = default.calibration_s
    """Seconds of room noise measured at the start."""
    twin: bool = False
    """Run against the digital twin: lab, twin and capture started around the bench."""
    twin_config: Path | None = None
    """The twin's configuration; None: the shipped one."""
    quiet_lead_s: float | None = None
    """With ``twin``: seconds of background captured before the first utterance; None: the run's
    on a resume, else ``default.twin_quiet_s`` (attribution learns the background from it)."""
    resume: Path | None = None
    """The run directory to continue."""
    speech_cache: Path | None = None
    """The speech cache; None: the default one."""

    @property
    def tail_s(self) -> float:
        """:attr:`capture_tail_s` with its default filled in."""
        if self.capture_tail_s is not None:
            return self.capture_tail_s
        return default.twin_quiet_s if self.twin else default.capture_tail_s

    @property
    def lead_s(self) -> float:
        """:attr:`quiet_lead_s` with its default filled in (0 without the twin)."""
        if not self.twin:
            return 0.0
        return default.twin_quiet_s if self.quiet_lead_s is None else self.quiet_lead_s

    def resumed(self, run: RunDir, manifest: Manifest) -> RunOptions:
        """These options with what they leave open taken from the run's manifest."""
        saved = manifest.settings
        marker = self.marker
        if marker is None and saved.marker:
            try:
                marker = parse_target(saved.marker)
            except HarnessError as exc:
                raise InputError(run.manifest, f"settings.marker: {exc}") from None
        capture, capture_device = self.capture, self.capture_device or saved.capture_device
        rotation = {
            "capture_filter": self.capture_filter,
            "capture_rotate_mb": self.capture_rotate_mb,
            "capture_rotate_s": self.capture_rotate_s,
        }
        if capture is None and saved.capture:
            capture = saved.capture
            rotation = {key: value if value is not None else getattr(saved, key) for key, value in rotation.items()}
        input_device = self.input_device
        if input_device is None and manifest.input_device is not None:
            input_device = manifest.input_device.spec
        return dataclasses.replace(
            self,
            output_device=self.output_device or manifest.output_device.spec,
            input_device=input_device,
            backend=self.backend or manifest.backend,
            retries=saved.retries if self.retries is None else self.retries,
            transcribe=self.transcribe or saved.transcribe,
            marker=marker,
            capture=capture,
            capture_device=capture_device,
            **rotation,
            twin=self.twin or saved.twin,
            twin_config=self.twin_config or (Path(saved.twin_config) if saved.twin_config else None),
            quiet_lead_s=_or(self.quiet_lead_s, saved.quiet_lead_s),
            capture_tail_s=_or(self.capture_tail_s, saved.capture_tail_s),
        )


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value
