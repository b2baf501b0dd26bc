"""Start and stop a tcpdump capture, here or on another host over SSH."""

from __future__ import annotations

import atexit
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from harness.capture.bpf import check_filter, combine_filters
from harness.capture.spec import CaptureSpec, check_local_interface, parse_capture_spec
from harness.capture.tcpdump import (
    LISTENING,
    file_pattern,
    remote_command,
    remote_start_command,
    scp_argv,
    ssh_argv,
    tcpdump_argv,
)
from harness.children import command_line, die_with_parent, running_from_pid_file, write_pid_file
from harness.errors import DeviceError, HarnessError, ToolMissing
from harness.files import PRIVATE_FILE, natural_order, private_dir, sha256_file

START_TIMEOUT_S = 10.0
SSH_START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
SETTLE_POLL_S = 0.05
SETTLE_MAX_S = 3.0
REMOTE_ROOT = "/tmp"
_CTRL_C = b"\x03"
_DROPPED = re.compile(r"^(\d+) packets? dropped by kernel")


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """One capture file on this machine (fetched back when the capture ran remotely).

    ``started_ns``/``stopped_ns``: UTC epoch ns when tcpdump was listening and when it had
    exited (the whole capture's span, the same for every file of a rotated capture).
    """

    path: Path
    sha256: str
    bytes: int
    interface: str
    started_ns: int
    stopped_ns: int


class CaptureHandle:
    """A running capture. Stop it with :meth:`stop` (or use it as a context manager)."""

    def __init__(
        self,
        spec: CaptureSpec,
        out_dir: Path,
        prefix: str,
        argv: list[str],
        remote_dir: str | None,
        ssh_config: str | None,
    ) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.argv = argv
        self._prefix = prefix
        self._remote_dir = remote_dir
        self._ssh_config = ssh_config
        self._stderr: deque[str] = deque(maxlen=50)
        self._listening = threading.Event()
        self.started_ns = 0
        self.files: list[CaptureFile] | None = None
        # tcpdump's own count at exit ("N packets dropped by kernel"), None until known.
        self.dropped_packets: int | None = None
        env = dict(os.environ, TZ="UTC", LC_ALL="C")
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL if spec.ssh is None else subprocess.PIPE,
                stderr=subprocess.PIPE if spec.ssh is None else subprocess.STDOUT,
                umask=0o077,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except FileNotFoundError:
            raise ToolMissing(f"{argv[0]} is not installed") from None
        _LIVE.add(self)
        # Lets the next run into this folder find this capture if it outlives the bench.
        self._pid_file = pid_file(out_dir, prefix)
        write_pid_file(self._pid_file, self._proc.pid)
        stream = self._proc.stderr if spec.ssh is None else self._proc.stdout
        self._reader = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._reader.start()
        self._wait_listening(SSH_START_TIMEOUT_S if spec.ssh else START_TIMEOUT_S)

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def _drain(self, stream) -> None:
        # Keep reading so tcpdump never blocks on a full pipe; remember the last lines for errors.
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._stderr.append(line)
            if LISTENING in line:
                self._listening.set()
            dropped = _DROPPED.search(line)
            if dropped:
                self.dropped_packets = int(dropped.group(1))
        self._listening.set()

    def _wait_listening(self, timeout: float) -> None:
        if self._listening.wait(timeout) and self.running:
            self.started_ns = time.time_ns()
            return
        self._terminate()
        self._pid_file.unlink(missing_ok=True)
        detail = self._last_message()
        self._cleanup_remote()
        raise DeviceError(f"capture on {self.spec} did not start: {detail}")

    def _last_message(self) -> str:
        lines = [line for line in self._stderr if LISTENING not in line]
        return lines[-1].removeprefix("tcpdump: ") if lines else "no message (timed out)"

    def stop(self, tail_s: float = 0.0) -> list[CaptureFile]:
        """Keep capturing ``tail_s`` seconds more, stop tcpdump, and return the files (0600)."""
        if self.files is not None:
            return self.files
        try:
            if tail_s > 0 and self.running:
                time.sleep(tail_s)
            if self.spec.ssh is None:
                self._settle()
            self._terminate()
            stopped_ns = time.time_ns()
            self._reader.join(STOP_TIMEOUT_S)
            paths = self._fetch() if self.spec.ssh else self._local_files()
        finally:
            _LIVE.discard(self)
            if not self.running:
                self._pid_file.unlink(missing_ok=True)
            self._cleanup_remote()
        self.files = [self._describe(p, stopped_ns) for p in paths]
        return self.files

    def _settle(self) -> None:
        """Wait until the files stop growing: tcpdump drops what it has not yet read from the
        kernel when interrupted, so packets sent just before stop() would otherwise be lost."""
        deadline = time.monotonic() + SETTLE_MAX_S
        last, quiet = -1, 0
        while quiet < 2 and time.monotonic() < deadline and self.running:
            size = sum(p.stat().st_size for p in self._local_files())
            quiet = quiet + 1 if size == last else 0
            last = size
            time.sleep(SETTLE_POLL_S)

    def _terminate(self) -> None:
        """Interrupt tcpdump (it flushes and closes its file), escalating if it does not exit."""
        if not self.running:
            return
        if self.spec.ssh is None:
            steps = [lambda: self._proc.send_signal(signal.SIGINT), self._proc.terminate, self._proc.kill]
        else:
            steps = [self._send_ctrl_c, self._proc.terminate, self._proc.kill]
        for step in steps:
            try:
                step()
                self._proc.wait(STOP_TIMEOUT_S)
                return
            except (subprocess.TimeoutExpired, OSError):
                continue

    def _send_ctrl_c(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(_CTRL_C)
        self._proc.stdin.flush()

    def paths(self) -> list[Path]:
        """Its files on this machine so far (a remote capture: where its first file will be fetched to)."""
        if self.spec.ssh is None:
            return self._local_files() or [self.out_dir / f"{self._prefix}.pcap"]
        return [self.out_dir / f"{self._prefix}.pcap"]

    def _local_files(self) -> list[Path]:
        return sorted(self.out_dir.glob(f"{self._prefix}*"), key=natural_order)

    def _fetch(self) -> list[Path]:
        assert self.spec.ssh is not None and self._remote_dir is not None
        fetch_dir = private_dir(self.out_dir / f".{self._prefix}.fetch")
        argv = scp_argv(self.spec.ssh, f"{self._remote_dir}/*", str(fetch_dir), self._ssh_config)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise DeviceError(f"could not fetch the capture from {self.spec}: {done.stderr.strip()}")
        paths = []
        for fetched in sorted(fetch_dir.iterdir(), key=natural_order):
            target = self.out_dir / fetched.name
            fetched.replace(target)
            paths.append(target)
        fetch_dir.rmdir()
        return paths

    def _cleanup_remote(self) -> None:
        if self.spec.ssh is None or self._remote_dir is None:
            return
        command = remote_command("rm", "-rf", "--", self._remote_dir)
        argv = ssh_argv(self.spec.ssh, command, self._ssh_config, tty=False)
        subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self._remote_dir = None

    def _describe(self, path: Path, stopped_ns: int) -> CaptureFile:
        os.chmod(path, PRIVATE_FILE)
        return CaptureFile(
            path, sha256_file(path), path.stat().st_size, self.spec.interface, self.started_ns, stopped_ns
        )

    def __enter__(self) -> CaptureHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_LIVE: set[CaptureHandle] = set()


@atexit.register
def _stop_all() -> None:
    for handle in list(_LIVE):
        handle._terminate()
        handle._pid_file.unlink(missing_ok=True)
        handle._cleanup_remote()


def start_capture(
    spec: str | CaptureSpec,
    out_dir: str | Path,
    device: str | None = None,
    bpf: str | None = None,
    rotate_mb: int | None = None,
    rotate_s: int | None = None,
    ssh_config: str | Path | None = None,
) -> CaptureHandle:
    """Start tcpdump on ``spec`` (``IFACE`` or ``ssh://user@host[:port]/IFACE``) and return once
    it is listening. Files go to ``out_dir`` (made 0700) and are 0600.

    ``device``: a MAC or IP address; only its traffic is kept. ``bpf``: an extra filter
    (checked by ``tcpdump -d``). ``rotate_mb``/``rotate_s``: start a new file after that many
    megabytes (10^6 bytes) or seconds. ``ssh_config``: an OpenSSH config file (``ssh -F``).
    Raises HarnessError (bad spec/filter), DeviceError (no such interface, tcpdump failed),
    ToolMissing.
    """
    spec = parse_capture_spec(spec) if isinstance(spec, str) else spec
    for name, value in (("rotate_mb", rotate_mb), ("rotate_s", rotate_s)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise HarnessError(f"{name} must be a whole number >= 1, not {value!r}")
    expression = _check_tools(spec, device, bpf)
    out_dir = private_dir(Path(out_dir).resolve())
    check_no_capture_running(out_dir)
    prefix = f"capture-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    if spec.ssh is None:
        pattern = file_pattern(str(out_dir), prefix, rotate_s)
        argv = tcpdump_argv(spec.interface, pattern, expression, rotate_mb, rotate_s, _run_as())
        return CaptureHandle(spec, out_dir, prefix, argv, None, None)
    remote_dir = f"{REMOTE_ROOT}/harness-{prefix}"
    pattern = file_pattern(remote_dir, prefix, rotate_s)
    # Default kernel buffering on the (small) remote host: stop after a tail of >= 1 s.
    remote = tcpdump_argv(spec.interface, pattern, expression, rotate_mb, rotate_s, None, immediate=False)
    config = str(ssh_config) if ssh_config else None
    argv = ssh_argv(spec.ssh, remote_start_command(remote_dir, remote), config)
    return CaptureHandle(spec, out_dir, prefix, argv, remote_dir, config)


def _check_tools(spec: CaptureSpec, device: str | None, bpf: str | None) -> str | None:
    """tcpdump (and ssh) installed, the local interface present, the filter compiled; returns the filter."""
    if shutil.which("tcpdump") is None and (spec.ssh is None or bpf):
        raise ToolMissing("tcpdump is not installed (apt-get install tcpdump)")
    if spec.ssh is None:
        check_local_interface(spec.interface)
    elif shutil.which("ssh") is None:
        raise ToolMissing("ssh is not installed (apt-get install openssh-client)")
    expression = combine_filters(device, bpf)
    if bpf:
        check_filter(expression or bpf, spec.interface if spec.ssh is None else None)
    return expression


def check_capture(spec: str | CaptureSpec, device: str | None = None, bpf: str | None = None) -> CaptureSpec:
    """Check what :func:`start_capture` needs, starting nothing: the target's syntax, tcpdump (and
    ssh) installed, a local interface present and open to this user (tcpdump opens it to compile
    the filter), the filter valid. Reaches no remote host. Raises like :func:`start_capture`."""
    spec = parse_capture_spec(spec) if isinstance(spec, str) else spec
    expression = _check_tools(spec, device, bpf)
    if spec.ssh is None:
        try:
            check_filter(expression or "", spec.interface)
        except ToolMissing:
            raise
        except HarnessError as exc:
            raise DeviceError(str(exc)) from None
    return spec


def pid_file(out_dir: Path, prefix: str) -> Path:
    """Where a running capture's process id is kept (removed once it has stopped)."""
    return out_dir / f".{prefix}.pid"


def check_no_capture_running(out_dir: Path) -> None:
    """Raise DeviceError if a capture (e.g. one an earlier, killed run left) still writes into
    ``out_dir``; pid files of captures that have ended are removed."""
    for path in sorted(out_dir.glob(".capture-*.pid")):
        pid = running_from_pid_file(path)
        if pid is None:
            path.unlink(missing_ok=True)
            continue
        raise DeviceError(
            f"{out_dir}: a capture still runs into this folder, perhaps left by an earlier run "
            f"(pid {pid}: {command_line(pid)}); stop it first (kill {pid})"
        )


def _run_as() -> str | None:
    """The invoking user for tcpdump's ``-Z`` when running as root (else tcpdump keeps ours)."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(os.getuid()).pw_name
