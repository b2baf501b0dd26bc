"""The virtual lab's folder, environment and commands."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from harness.audio import lab_status
from harness.audio.lab import PCMS, apply_lab_environment, lab_environment
from harness.cli.main import main

from conftest import REPO, require_tool

pytestmark = pytest.mark.lab


def test_lab_folder_is_private_and_names_the_devices(lab):
    status = lab_status(lab.base)
    assert status.running and status.pid
    assert stat.S_IMODE(os.stat(lab.base).st_mode) == 0o700
    asoundrc = (lab.base / "asoundrc").read_text()
    for name, target in PCMS.items():
        assert f"pcm.{name} " in asoundrc and f'device "{target}"' in asoundrc
    assert lab.env["ALSA_CONFIG_PATH"].endswith(f":{lab.base / 'asoundrc'}")
    assert lab.env["ALSA_CONFIG_PATH"].split(":")[0].endswith("alsa.conf")
    assert lab_environment(lab.base) == lab.env


def test_lab_environment_is_applied_only_without_a_chosen_server(lab, monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", "unix:/somewhere/else")
    assert apply_lab_environment() == {}
    assert os.environ["PULSE_SERVER"] == "unix:/somewhere/else"
    monkeypatch.delenv("PULSE_SERVER")
    monkeypatch.setenv("HARNESS_LAB_DIR", str(lab.base))
    assert apply_lab_environment() == lab.env
    assert os.environ["PULSE_SERVER"] == lab.env["PULSE_SERVER"]


def test_lab_commands_start_report_and_stop(tmp_path, capsys):
    require_tool("pulseaudio")
    base = tmp_path / "lab"
    assert main(["lab", "status", "--dir", str(base)]) == 1
    try:
        assert main(["lab", "up", "--dir", str(base)]) == 0
        exports = capsys.readouterr().out
        assert f"export PULSE_SERVER=unix:{base}/run/pulse/native" in exports
        assert "export ALSA_CONFIG_PATH=" in exports
        assert main(["lab", "status", "--dir", str(base)]) == 0
        assert "running" in capsys.readouterr().out
    finally:
        main(["lab", "down", "--dir", str(base)])
    assert not lab_status(base).running


def test_lab_script_wraps_the_command(tmp_path):
    require_tool("pulseaudio")
    env = dict(os.environ, HARNESS_LAB_DIR=str(tmp_path / "lab"))
    script = REPO / "scripts" / "lab"
    up = subprocess.run([script, "up"], env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0 and "export PULSE_SERVER=" in up.stdout
        assert subprocess.run([script, "status"], env=env, capture_output=True).returncode == 0
    finally:
        subprocess.run([script, "down"], env=env, capture_output=True)
    assert subprocess.run([script, "status"], env=env, capture_output=True).returncode == 1
    assert subprocess.run([script, "sideways"], env=env, capture_output=True).returncode == 2
