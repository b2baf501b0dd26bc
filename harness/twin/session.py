"""A bench run against the twin, or its resume: lab up, capture and twin started around the
bench, the script run, all stopped; the capture files are in the manifest from their start."""

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
from harness.capture import CaptureFile
from harness.defaults import default
from harness.errors import HarnessError
from harness.files import PRIVATE_FILE, sha256_file
from harness.rundir.events import CaptureFileInfo
from harness.rundir.layout import RunDir
from harness.twin.config import load_config
from harness.twin.process import TwinProcess

# After the twin stopped, so its last FINs (the keep-alive's close) reach the capture.
CAPTURE_FLUSH_S = 1.0
# The run's last words (often the stop phrase) are still being heard when the bench finishes.
SETTLE_S = 1.5


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


def run_with_twin(options: RunOptions, console: Any) -> TwinRun:
    """Run ``options.scripts`` against the twin, or resume the twin run ``options.resume``;
    devices default to the lab's.

    The capture (tcpdump on ``lo`` filtered on the twin's address, or the twin's synthetic one)
    starts once the twin booted, as a bench's capture starts after the Echo opened its voice
    connection, and lasts until the twin stopped: every flow of the truth after its ``twin_live``
    record is in it; its files are in the manifest from the moment it starts. The twin runs
    ``options.lead_s`` before the first utterance and ``options.tail_s`` (at least
    :data:`SETTLE_S`) after the last answer: quiet time holding only background traffic, which
    the correlation learns the background from. The first error is the one raised; the run is
    left resumable.
    """
    began = time.monotonic()
    if not lab_status().running:
        console.print(f"starting the virtual lab in {lab_up().base}", markup=False, highlight=False)
    options = dataclasses.replace(options, twin=True, capture=None)  # the capture is started here, around the twin
    if not options.resume:
        config = load_config(options.twin_config)
        options = dataclasses.replace(
            options,
            output_device=options.output_device or default.lab_output,
            input_device=options.input_device or default.lab_input,
            capture_device=config.network.device,
        )
    bench = BenchRun(options, console)
    bench.prepare()
    options, run = bench.options, bench.run_dir
    device = load_config(options.twin_config).network.device
    segment = _Segment(bench, real_capture_possible())
    status = 1
    try:
        bench.start()
        if bench.finished_before:
            bench.record.close()
            return TwinRun(0, run, _capture_paths(bench), not segment.real_capture, time.monotonic() - began)
        scripts = [run.resolve(s.path) for s in bench.record.manifest.scripts]
        segment.twin = TwinProcess(
            scripts, run, options.twin_config, segment.synthetic_path, options.backend or default.backend, hold=True
        )
        console.print(f"starting the twin ({device}); its log: {segment.twin.log_path}", markup=False, highlight=False)
        segment.twin.start()  # like an Echo's, its voice connection opens at boot, before the capture starts
        segment.start_capture(device)
        segment.twin.go()
        if options.lead_s > 0:
            console.print(f"quiet lead: {options.lead_s:g} s of background only", markup=False, highlight=False)
            time.sleep(options.lead_s)
        status = bench.execute()
        time.sleep(max(SETTLE_S, options.tail_s))
    except BaseException as exc:
        segment.stop(failed=True)
        bench.abandon(str(exc) or type(exc).__name__)
        raise
    segment.stop(failed=False)
    return TwinRun(status, run, _capture_paths(bench), not segment.real_capture, time.monotonic() - began)


def _capture_paths(bench: BenchRun) -> list[Path]:
    return [bench.run_dir.resolve(c.path) for c in bench.record.manifest.captures if c.state != "missing"]


class _Segment:
    """This process's twin and capture around the bench, stopped in order (twin, then capture)."""

    def __init__(self, bench: BenchRun, real_capture: bool) -> None:
        self.bench = bench
        self.real_capture = real_capture
        self.twin: TwinProcess | None = None
        run, segments = bench.run_dir, len(bench.record.manifest.segments) if bench.record.resuming else 0
        # the twin writes it when it stops, numbered per run segment (a resume adds one)
        self.synthetic_path = None if real_capture else run.capture / f"twin-synthetic-{segments + 1}.pcap"
        self._handle: Any = None
        self._opened: list[CaptureFileInfo] = []

    def start_capture(self, device: str) -> None:
        """Start the capture (or name the twin's synthetic one) and list it in the manifest at once."""
        record = self.bench.record
        run = record.run
        run.create(run.capture)
        if self.real_capture:
            from harness.capture import start_capture

            self._handle = start_capture("lo", run.capture, device=device)
            self._opened = record.capture_opened(self._handle.paths(), "lo", self._handle.started_ns)
        else:
            assert self.synthetic_path is not None
            self._opened = record.capture_opened([self.synthetic_path], "lo", time.time_ns(), synthetic=True)

    def stop(self, failed: bool) -> None:
        """Stop the twin, then the capture, and close the capture's entries. After a failure
        (``failed``) an error here is only shown, so the first one stays the one reported."""
        try:
            if self.twin is not None:
                self.twin.stop()
            self._close_capture()
        except HarnessError as exc:
            if not failed:
                raise
            self.bench.console.print(f"also: {exc}", markup=False, highlight=False, soft_wrap=True)

    def _close_capture(self) -> None:
        record, files = self.bench.record, []
        if self._handle is not None:
            files = [record.capture_file(f) for f in self._handle.stop(CAPTURE_FLUSH_S)]
        elif self.synthetic_path is not None and self.synthetic_path.exists():
            os.chmod(self.synthetic_path, PRIVATE_FILE)
            stat = self.synthetic_path.stat()
            files = [
                record.capture_file(
                    CaptureFile(
                        self.synthetic_path,
                        sha256_file(self.synthetic_path),
                        stat.st_size,
                        "lo",
                        self._opened[0].started_ns or 0,
                        stat.st_mtime_ns,
                    ),
                    synthetic=True,
                )
            ]
        if self._opened:
            record.capture_closed(self._opened, files)
