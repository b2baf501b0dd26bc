"""A bench run against the twin: lab up, capture and twin started, the script run, all stopped,
and the run directory completed with the capture files and the truth."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.audio import lab_status, lab_up
from harness.bench.options import RunOptions
from harness.bench.run import BenchRun
from harness.defaults import default
from harness.errors import HarnessError
from harness.files import PRIVATE_FILE, sha256_file
from harness.rundir.events import CaptureFileInfo
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest, write_manifest
from harness.twin.config import load_config
from harness.twin.process import TwinProcess

# After the twin stopped, so its last FINs (the keep-alive's close) reach the capture.
CAPTURE_FLUSH_S = 1.0
# The run's last words (often the stop phrase) are still being heard when the bench finishes.
SETTLE_S = 1.5
SYNTHETIC_NAME = "twin-synthetic.pcap"


@dataclass(frozen=True)
class TwinRun:
    status: int
    run: RunDir
    capture: list[Path]
    synthetic: bool
    seconds: float

    def describe(self, report: Path | None = None) -> str:
        """Where everything of the run is, one line each."""
        run = self.run
        lines = [
            f"run directory: {run.root}  ({self.seconds:.0f} s)",
            f"  manifest:  {run.manifest}",
            f"  events:    {run.events}",
            f"  answers:   {run.answers}/",
            f"  capture:   {', '.join(map(str, self.capture)) or 'none'}" + (" (synthetic)" if self.synthetic else ""),
            f"  truth:     {run.truth}",
        ]
        if report is not None:
            lines.append(f"  report:    {report}")
        return "\n".join(lines)


def real_capture_possible() -> bool:
    """Whether tcpdump can capture here (root and installed); else the twin writes the capture."""
    return os.geteuid() == 0 and shutil.which("tcpdump") is not None


def run_with_twin(options: RunOptions, console: Any, config_path: Path | None = None, quiet_lead_s: float = 0.0) -> TwinRun:
    """Run ``options.scripts`` against the twin; devices default to the lab's.

    The capture (tcpdump on ``lo`` filtered on the twin's address, or the twin's synthetic one)
    starts once the twin booted, as a bench's capture starts after the Echo opened its voice
    connection, and lasts until the twin stopped: every flow of the truth after its
    ``twin_live`` record is in it. The twin runs
    ``quiet_lead_s`` before the first utterance and ``options.capture_tail_s`` (at least
    :data:`SETTLE_S`) after the last answer: quiet time holding only background traffic, which
    the correlation learns the background from.
    """
    if options.resume:
        raise HarnessError("--twin cannot resume a run: start a new one")
    config = load_config(config_path)
    began = time.monotonic()
    if not lab_status().running:
        console.print(f"starting the virtual lab in {lab_up().base}", markup=False, highlight=False)
    options = dataclasses.replace(
        options, output_device=options.output_device or default.lab_output,
        input_device=options.input_device or default.lab_input,
        capture=None,  # the capture is started here, around the twin, not by the bench
    )  # fmt: skip
    bench = BenchRun(options, console)
    bench.prepare()
    run = bench.run_dir
    run.create(run.capture)
    device = config.network.device
    synthetic = not real_capture_possible()
    handle = None
    synthetic_path = run.capture / SYNTHETIC_NAME
    twin = TwinProcess(options.scripts, run, config_path, synthetic_path if synthetic else None,
                       options.backend or default.backend, hold=True)  # fmt: skip
    files: list[CaptureFileInfo] = []
    status = 1
    try:
        console.print(f"starting the twin ({device}); its log: {twin.log_path}", markup=False, highlight=False)
        # like an Echo's, its voice connection opens at boot, before the capture starts
        twin.start()
        if not synthetic:
            from harness.capture import start_capture

            handle = start_capture("lo", run.capture, device=device)
        twin.go()
        if quiet_lead_s > 0:
            console.print(f"quiet lead: {quiet_lead_s:g} s of background only", markup=False, highlight=False)
            time.sleep(quiet_lead_s)
        status = bench.execute()
        time.sleep(max(SETTLE_S, options.capture_tail_s))
    finally:
        twin.stop()
        if handle is not None:
            for f in handle.stop(CAPTURE_FLUSH_S):
                files.append(CaptureFileInfo(path=run.relative(f.path), sha256=f.sha256, bytes=f.bytes,
                                             interface=f.interface, started_ns=f.started_ns, stopped_ns=f.stopped_ns))
        elif synthetic_path.exists():
            os.chmod(synthetic_path, PRIVATE_FILE)
            files.append(CaptureFileInfo(path=run.relative(synthetic_path), sha256=sha256_file(synthetic_path),
                                         bytes=synthetic_path.stat().st_size, interface="lo", synthetic=True))
        _record_capture(run, files, device, synthetic)
    return TwinRun(status, run, [run.resolve(f.path) for f in files], synthetic, time.monotonic() - began)


def _record_capture(run: RunDir, files: list[CaptureFileInfo], device: str, synthetic: bool) -> None:
    """Add the capture to the manifest the bench wrote, so later stages find it and the device."""
    manifest = read_manifest(run)
    settings = manifest.settings.model_copy(update={"capture": "twin-synthetic" if synthetic else "lo",
                                                    "capture_device": device})  # fmt: skip
    write_manifest(run, manifest.model_copy(update={"captures": [*manifest.captures, *files], "settings": settings}))
