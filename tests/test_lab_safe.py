"""The lab folder is this user's own: a folder someone else made first, or a symbolic link, is
refused with one line before anything in it is read or run (its ALSA file decides what runs)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.audio.lab import apply_lab_environment, default_base, lab_down, lab_status, lab_up
from harness.errors import OutputError

OTHER_UID = 54321
# What another user would plant: a PCM that runs a command when opened.
HOSTILE_ASOUNDRC = 'pcm.harness_out { type file slave.pcm null file "|touch {marker}" }\n'


def _hostile_lab(base: Path, marker: Path) -> None:
    """A lab folder as another local user would leave it: theirs, open to all, with their ALSA file."""
    (base / "run" / "pulse").mkdir(parents=True)
    (base / "asoundrc").write_text(HOSTILE_ASOUNDRC.replace("{marker}", str(marker)))
    (base / "run" / "pulse" / "pid").write_text(f"{os.getpid()}\n")
    for path in (base, base / "run", base / "run" / "pulse", base / "asoundrc"):
        os.chown(path, OTHER_UID, OTHER_UID)
    os.chmod(base, 0o777)


def test_without_a_runtime_folder_the_default_is_per_user_in_tmp(monkeypatch):
    monkeypatch.delenv("HARNESS_LAB_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_base() == Path("/tmp") / f"harness-lab-{os.getuid()}"


def test_a_lab_folder_another_user_made_first_is_refused(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    base, marker = tmp_path / "harness-lab-0", tmp_path / "ran"
    _hostile_lab(base, marker)
    planted = (base / "asoundrc").read_text()
    message = f"{base}: belongs to uid {OTHER_UID}, not to this user; refusing to use it as the lab folder"
    for step in (lambda: lab_up(base), lambda: lab_status(base), lambda: lab_down(base)):
        with pytest.raises(OutputError) as caught:
            step()
        assert str(caught.value).startswith(message)
    monkeypatch.setenv("HARNESS_LAB_DIR", str(base))
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    monkeypatch.delenv("ALSA_CONFIG_PATH", raising=False)
    with pytest.raises(OutputError):
        apply_lab_environment()
    assert "ALSA_CONFIG_PATH" not in os.environ
    # Nothing was changed, adopted or run: still theirs, their file untouched.
    assert base.stat().st_uid == OTHER_UID and stat.S_IMODE(base.stat().st_mode) == 0o777
    assert (base / "asoundrc").read_text() == planted
    assert not marker.exists()


def test_the_cli_refuses_it_with_one_line_and_exit_1(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    base = tmp_path / "lab"
    _hostile_lab(base, tmp_path / "ran")
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "lab", "up", "--dir", str(base)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and f"{base}: belongs to uid {OTHER_UID}" in done.stderr


def test_a_lab_folder_reached_through_a_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.chmod(real, 0o755)
    link = tmp_path / "lab"
    link.symlink_to(real)
    for step in (lambda: lab_up(link), lambda: lab_status(link)):
        with pytest.raises(OutputError, match=f"{link}: is a symbolic link, not a folder"):
            step()
    assert list(real.iterdir()) == [] and stat.S_IMODE(real.stat().st_mode) == 0o755


def test_a_missing_lab_folder_is_simply_not_running(tmp_path):
    assert not lab_status(tmp_path / "none").running
    assert lab_down(tmp_path / "none") is False
    assert not (tmp_path / "none").exists()
