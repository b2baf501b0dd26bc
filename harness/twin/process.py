"""Running the twin: in this process until a signal (``harness twin serve``), or as a child
process another program starts and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from harness.children import command_line, die_with_parent, running_from_pid_file, write_pid_file
from harness.defaults import default
from harness.errors import HarnessError
from harness.files import PRIVATE_FILE, output_error, private_dir
from harness.rundir.layout import RunDir
from harness.script import load_personas
from harness.twin.config import load_config
from harness.twin.device import Twin

READY = "twin ready"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def serve(
    scripts: list[Path],
    truth: Path,
    config: Path | None = None,
    synthetic_capture: Path | None = None,
    backend: str = default.backend,
    ear_device: str | None = None,
    mouth_device: str | None = None,
    hold: bool = False,
) -> int:
    """Run the twin until SIGTERM or SIGINT; prints :data:`READY` once it booted (voice connection
    open, listening). ``hold``: it then waits for a line on stdin before sending anything else."""
    personas = load_personas(scripts)
    settings = load_config(config)
    work = private_dir(RunDir(truth.parent).twin_work)
    extra = {k: v for k, v in (("ear_device", ear_device), ("mouth_device", mouth_device)) if v}
    twin = Twin(
        personas, settings, truth, work, backend, synthetic_capture=synthetic_capture, config_path=config, **extra
    )
    done, go = threading.Event(), threading.Event()
    twin.start()  # SIGTERM until here (its bench died while it started) ends it at once: nothing ran yet
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    print(READY, flush=True)
    if hold:
        threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
    else:
        go.set()
    try:
        while not done.is_set() and not go.wait(0.05):
            pass
        if not done.is_set():
            twin.go()
        while not done.wait(0.5):
            if twin.ear.error is not None:
                raise HarnessError(f"the twin's ear failed: {twin.ear.error}")
    finally:
        twin.stop()
    return 0


class TwinProcess:
    """The twin as a child process (``python -m harness.cli.main twin serve ...``)."""

    def __init__(
        self,
        scripts: list[Path],
        run: RunDir,
        config: Path | None = None,
        synthetic_capture: Path | None = None,
        backend: str = default.backend,
        hold: bool = False,
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "harness.cli.main",
            "twin",
            "serve",
            *map(str, scripts),
            "--truth",
            str(run.truth),
            "--backend",
            backend,
            *(["--hold"] if hold else []),
        ]
        if config is not None:
            self.argv += ["--config", str(config)]
        if synthetic_capture is not None:
            self.argv += ["--synthetic-capture", str(synthetic_capture)]
        self.log_path = run.twin_log
        self.pid_path = run.twin_pid
        self._lines: deque[str] = deque(maxlen=20)
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the twin and return once it listens; raises HarnessError with its last words if not
        (e.g. its address is in use by a twin an earlier run left). The twin gets SIGTERM when
        the thread calling this ends, so call it from one that outlives the twin."""
        self._wait_for_earlier()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # never through a link
        try:
            log = os.open(self.log_path, flags, PRIVATE_FILE)
        except OSError as exc:
            raise output_error(self.log_path, exc, "cannot open the twin's log") from None
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        finally:
            os.close(log)
        write_pid_file(self.pid_path, self._proc.pid)
        ready = threading.Event()

        def read() -> None:
            assert self._proc is not None and self._proc.stdout is not None
            for line in self._proc.stdout:
                self._lines.append(line.rstrip())
                if line.strip() == READY:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (
                    self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
                    if self.log_path.exists()
                    else []
                )
                said = " ".join(tail).removeprefix("harness: error: ")  # its own first error, e.g. address in use
                raise HarnessError(f"the twin did not start: {said or 'no message'} (log: {self.log_path})")

    def _wait_for_earlier(self) -> None:
        """Wait for a twin of this run that a killed bench left behind: it got the parent-death
        signal and is finishing its truth; one that outlives :data:`STOP_TIMEOUT_S` is reported."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (pid := running_from_pid_file(self.pid_path)) is not None:
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"a twin of this run still runs (pid {pid}: {command_line(pid)}); stop it first (kill {pid})"
                )
            time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)

    def go(self) -> None:
        """Let a twin started with ``hold`` begin its traffic."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()

    def stop(self) -> int | None:
        """Ask the twin to finish (its truth is complete afterwards); returns its exit status."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self.pid_path.unlink(missing_ok=True)
        return self._proc.returncode
