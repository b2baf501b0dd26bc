"""The virtual lab: a private PulseAudio server with the bench's devices, for hosts
without a speaker or microphone.

Sinks ``harness_out`` (the bench speaker; its monitor is what the Echo hears) and
``speaker_answer`` (what the Echo says), and the input ``virtual_mic`` remapped from
``speaker_answer.monitor``. PortAudio reaches PulseAudio through ALSA's pulse plugin, so the
lab also writes ALSA PCMs with the same names (plus ``harness_out_monitor``, the Echo's ear),
each pinned to the lab's server, into ``BASE/asoundrc``; ``ALSA_CONFIG_PATH`` lists the
system's ``alsa.conf`` and that file, so the user's own ALSA files are read and never changed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, OutputError, ToolMissing
from harness.files import PRIVATE_FILE, atomic_write_text, check_own_dir, private_dir

SINKS = ("harness_out", "speaker_answer")
# ALSA PCM name -> PulseAudio sink or source it reaches. The PCM virtual_mic reads the monitor
# itself rather than its remapped copy: same samples, but PulseAudio dates a remap source's
# samples by when the sink rendered them (~5-15 ms before they count as played).
PCMS = {
    "harness_out": "harness_out",
    "speaker_answer": "speaker_answer",
    "virtual_mic": "speaker_answer.monitor",
    "harness_out_monitor": "harness_out.monitor",
}
LAB_RATE = 22050
SYSTEM_ALSA_CONF = ("/usr/share/alsa/alsa.conf", "/usr/local/share/alsa/alsa.conf")


def default_base() -> Path:
    """``$HARNESS_LAB_DIR``, else ``${XDG_RUNTIME_DIR:-/tmp}/harness-lab-UID``.

    In /tmp anyone may create that folder first; it is only ever used when it is a real folder of
    this user (see :func:`lab_status`), because its ALSA file decides what playback runs.
    """
    if os.environ.get("HARNESS_LAB_DIR"):
        return Path(os.environ["HARNESS_LAB_DIR"])
    return Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"harness-lab-{os.getuid()}"


@dataclass(frozen=True)
class LabStatus:
    base: Path
    running: bool
    pid: int | None
    server: str
    asoundrc: Path

    def environment(self) -> dict[str, str]:
        """Variables a client process needs to reach the lab's devices."""
        return {"PULSE_SERVER": self.server, "ALSA_CONFIG_PATH": _alsa_config_path(self.asoundrc)}


def _paths(base: Path) -> dict[str, Path]:
    run = base / "run"
    return {
        "run": run,
        "pulse": run / "pulse",
        "socket": run / "pulse" / "native",
        "pid": run / "pulse" / "pid",
        "state": base / "state",
        "home": base / "home",
        "script": base / "lab.pa",
        "asoundrc": base / "asoundrc",
        "log": base / "pulse.log",
    }


def _alsa_config_path(asoundrc: Path) -> str:
    inherited = [p for p in os.environ.get("ALSA_CONFIG_PATH", "").split(":") if p and p != str(asoundrc)]
    if not inherited:
        top = os.environ.get("ALSA_CONFIG_DIR")
        candidates = ([f"{top}/alsa.conf"] if top else []) + list(SYSTEM_ALSA_CONF)
        inherited = [next((c for c in candidates if Path(c).is_file()), SYSTEM_ALSA_CONF[0])]
    return ":".join([*inherited, str(asoundrc)])


def _pulse_script(socket_path: Path) -> str:
    lines = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket_path}"]
    # norewinds=1: without it the first sound into an idle null sink reaches the monitor garbled.
    # Mono at the speech rate: the harness's WAVs reach the monitor unresampled, sample for sample.
    lines += [
        f"load-module module-null-sink sink_name={s} norewinds=1 rate={LAB_RATE} channels=1 "
        f"sink_properties=device.description={s}"
        for s in SINKS
    ]
    lines.append(
        "load-module module-remap-source source_name=virtual_mic master=speaker_answer.monitor "
        "source_properties=device.description=virtual_mic"
    )
    return "\n".join(lines) + "\n"


def _asoundrc(server: str) -> str:
    return "".join(
        f'pcm.{name} {{\n    type pulse\n    server "{server}"\n    device "{target}"\n'
        f'    hint {{ show on description "harness lab: {target}" }}\n}}\n'
        for name, target in PCMS.items()
    )


def _pid(paths: dict[str, Path]) -> int | None:
    try:
        pid = int(paths["pid"].read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm.startswith("pulseaudio") else None


def _accepting(socket_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(socket_path))
        except OSError:
            return False
    return True


def _own_base(base: Path, create: bool) -> Path:
    """``base`` if it is a real folder of this user (made private, and first created when
    ``create``); else OutputError: a folder someone else made could hold their ALSA file."""
    try:
        return private_dir(base) if create else check_own_dir(base)
    except OutputError as exc:
        raise OutputError(base, f"{exc.message} as the lab folder (remove it, or set HARNESS_LAB_DIR)") from None


def lab_status(base: Path | None = None) -> LabStatus:
    """Whether the lab in ``base`` (default :func:`default_base`) is running.

    Raises OutputError when ``base`` exists but is not a real folder of this user.
    """
    base = Path(base or default_base())
    if os.path.lexists(base):
        _own_base(base, create=False)
    paths = _paths(base)
    pid = _pid(paths)
    running = pid is not None and _accepting(paths["socket"])
    return LabStatus(base, running, pid if running else None, f"unix:{paths['socket']}", paths["asoundrc"])


def lab_up(base: Path | None = None, timeout_s: float = 10.0) -> LabStatus:
    """Start the lab's PulseAudio (no-op when already running) and write its ALSA PCMs."""
    base = Path(base or default_base())
    status = lab_status(base)
    if status.running:
        return status
    exe = shutil.which("pulseaudio")
    if exe is None:
        raise ToolMissing("pulseaudio is not installed (apt-get install pulseaudio libasound2-plugins)")
    paths = _paths(base)
    _own_base(base, create=True)
    for key in ("run", "pulse", "state", "home"):
        private_dir(paths[key])
    for stale in (paths["socket"], paths["pid"]):
        stale.unlink(missing_ok=True)
    atomic_write_text(paths["script"], _pulse_script(paths["socket"]), PRIVATE_FILE)
    atomic_write_text(paths["asoundrc"], _asoundrc(status.server), PRIVATE_FILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env.update(
        HOME=str(paths["home"]),
        XDG_CONFIG_HOME=str(paths["home"]),
        XDG_RUNTIME_DIR=str(paths["run"]),
        PULSE_RUNTIME_PATH=str(paths["pulse"]),
        PULSE_STATE_PATH=str(paths["state"]),
    )
    command = [
        exe,
        "--daemonize=yes",
        "--exit-idle-time=-1",
        "--use-pid-file=yes",
        "--system=no",
        "-n",
        # Streams at other rates get the best resampler (the default one cuts 10-11 kHz).
        "--resample-method=soxr-vhq",
        "-F",
        str(paths["script"]),
        f"--log-target=file:{paths['log']}",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = lab_status(base)
        if status.running:
            return status
        time.sleep(0.02)
    log = paths["log"].read_text(errors="replace").strip().splitlines()[-3:] if paths["log"].exists() else []
    detail = "; ".join(log) or result.stderr.strip() or f"exit status {result.returncode}"
    raise HarnessError(f"the lab's PulseAudio did not start in {base}: {detail}")


def lab_down(base: Path | None = None, timeout_s: float = 5.0) -> bool:
    """Stop the lab's PulseAudio; returns whether one was running."""
    base = Path(base or default_base())
    if not os.path.lexists(base):
        return False
    paths = _paths(_own_base(base, create=False))
    pid = _pid(paths)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid(paths) == pid and time.monotonic() < deadline:
        time.sleep(0.02)
    if _pid(paths) == pid:
        os.kill(pid, signal.SIGKILL)
    for leftover in (paths["socket"], paths["pid"]):
        leftover.unlink(missing_ok=True)
    return True


def lab_environment(base: Path | None = None) -> dict[str, str]:
    """The client environment for a running lab, or {} when none runs."""
    status = lab_status(base)
    return status.environment() if status.running else {}


def apply_lab_environment() -> dict[str, str]:
    """Point this process at the default lab if one runs and no PulseAudio server is chosen.

    Must run before PortAudio is initialised; :func:`harness.audio.open_backend` calls it.
    """
    if os.environ.get("PULSE_SERVER"):
        return {}
    env = lab_environment()
    os.environ.update(env)
    return env


def shell_exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
