"""Activation detection on every real Echo capture of the shared reference folder (skipped where absent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.correlate import detect_activations, read_capture

HOMES = {"home_a": "10.63.7.79", "home_b": "192.168.86.40"}
COUNT = re.compile(r"_(\d+)(?:_\d+s|(?:_\d+)*_capture)?$")  # "..._5_30s": five commands; no count: five


def spoken(path: Path) -> int:
    match = COUNT.search(path.stem.partition("__")[2])
    return int(match.group(1)) if match else 5


@pytest.mark.parametrize(
    ("name", "device"),
    [("tell_me_a_joke_5x30s.pcapng", "192.168.86.40"), ("what_is_the_weather_5x30s.pcapng", "10.63.7.79")],
)
def test_five_activations_in_each_top_level_capture(echo_captures, name, device):
    result = detect_activations(read_capture([echo_captures / name], device))
    assert len(result.activations) == 5
    assert all(0 <= a.confidence <= 1 for a in result.activations)


def test_f1_over_the_development_captures(echo_captures):
    """Counts against the commands each file holds (the dataset has no onset log): F1 >= 0.98."""
    paths = sorted((echo_captures / "dev").glob("*.pcap*"))
    if not paths:
        pytest.skip("no development captures")
    tp = fp = fn = 0
    for path in paths:
        found = len(detect_activations(read_capture([path], HOMES[path.name.partition("__")[0]])).activations)
        expected = spoken(path)
        tp, fp, fn = tp + min(found, expected), fp + max(0, found - expected), fn + max(0, expected - found)
    assert 2 * tp / (2 * tp + fp + fn) >= 0.98
