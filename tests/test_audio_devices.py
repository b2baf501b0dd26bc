"""Device listing and choosing devices by index or name (pure matching, then the real lab)."""

from __future__ import annotations

import pytest

from harness.audio import BACKENDS, DeviceInfo, list_devices, open_backend, resolve_device
from harness.audio.devices import match_device
from harness.cli.main import main
from harness.errors import DeviceError


def device(index: int, name: str, inputs: int = 0, outputs: int = 2) -> DeviceInfo:
    return DeviceInfo(index, name, "ALSA", inputs, outputs, 44100.0)


DEVICES = [
    device(0, "USB Speaker"),
    device(1, "usb speaker 2"),
    device(2, "HDMI 0"),
    device(3, "Mic Array", inputs=2, outputs=0),
    device(4, "usb"),
]


def test_index_selects_that_device():
    assert match_device(DEVICES, 2, "output").name == "HDMI 0"
    assert match_device(DEVICES, "3", "input").name == "Mic Array"


def test_exact_name_wins_over_substring():
    assert match_device(DEVICES, "usb", "output").index == 4


def test_unique_case_insensitive_substring():
    assert match_device(DEVICES, "hdmi", "output").index == 2
    assert match_device(DEVICES, "ARRAY", "input").index == 3


def test_ambiguous_name_lists_the_candidates():
    with pytest.raises(DeviceError) as caught:
        match_device(DEVICES, "speaker", "output")
    message = str(caught.value)
    assert "ambiguous" in message and "[0] USB Speaker" in message and "[1] usb speaker 2" in message
    assert "HDMI" not in message


def test_no_match_lists_devices_of_that_kind():
    with pytest.raises(DeviceError) as caught:
        match_device(DEVICES, "bluetooth", "output")
    message = str(caught.value)
    assert "bluetooth" in message and "[2] HDMI 0" in message and "Mic Array" not in message


def test_index_of_wrong_kind_is_refused():
    with pytest.raises(DeviceError, match="no input device with index 0"):
        match_device(DEVICES, 0, "input")


@pytest.mark.lab
@pytest.mark.parametrize("backend", BACKENDS)
def test_lab_devices_are_listed_by_name(lab, backend):
    names = {d.name for d in list_devices(backend)}
    assert {lab.output, lab.monitor, lab.answer_output, lab.mic} <= names
    out = resolve_device(lab.output, "output", backend)
    assert out.name == lab.output and out.max_output_channels > 0
    assert resolve_device(out.index, "output", backend) == out
    assert resolve_device("VIRTUAL_M", "input", backend).name == lab.mic


@pytest.mark.lab
def test_lab_name_matching_several_devices_is_an_error(lab):
    with pytest.raises(DeviceError, match="ambiguous.*harness_out.*harness_out_monitor"):
        resolve_device("harness", "input")


@pytest.mark.lab
def test_devices_command_prints_the_table(lab, capsys):
    assert main(["devices", "--backend", "sounddevice"]) == 0
    printed = capsys.readouterr().out
    assert "virtual_mic" in printed and "host API" in printed


def test_unknown_backend_is_refused():
    with pytest.raises(DeviceError, match="unknown audio back end 'portaudio-rs'"):
        open_backend("portaudio-rs")
