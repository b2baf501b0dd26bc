"""What ``harness run`` was asked to do; a resume fills what it was not told from the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunOptions:
    """What ``harness run`` was asked to do (a resume fills the gaps from the manifest)."""

    scripts: list[Path] = field(default_factory=list)
    output_device: str | None = None
    input_device: str | None = None
    backend: str | None = None
    runs_dir: Path = Path("runs")
    seed: int | None = None
    marker: tuple[str, int] | None = None
    retries: int | None = None
    transcribe: bool = False
    capture: str | None = None
    capture_device: str | None = None
    capture_tail_s: float = 2.0
    device_wait_s: float = 60.0
    calibration_s: float = 2.0
    resume: Path | None = None
    speech_cache: Path | None = None
