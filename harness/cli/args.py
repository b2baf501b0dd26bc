"""Argument types shared by the commands: numbers checked at parse time, so a bad value is a
usage error (exit 2) naming the option."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from harness.errors import HarnessError

T = TypeVar("T")


def number(kind: Callable[[str], float], low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    """An argparse ``type`` for a finite int or float in ``[low, high)`` (either bound optional)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
        if (low is not None and value < low) or (high is not None and value >= high):
            bounds = (
                f"in [{low:g}, {high:g})"
                if low is not None and high is not None
                else (f">= {low:g}" if low is not None else f"< {high:g}")
            )
            raise argparse.ArgumentTypeError(f"must be {bounds}: {text!r}")
        return value

    return parse


def seconds(low: float | None = 0.0) -> Callable[[str], float]:
    """An argparse ``type`` for a duration or offset in seconds (``low=None`` allows negatives)."""
    return number(float, low)


def whole(low: int = 1) -> Callable[[str], float]:
    """An argparse ``type`` for a whole number ``>= low``."""
    return number(int, low)


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` from a parser that raises :class:`HarnessError`: its message becomes the usage error."""

    def wrapped(text: str) -> T:
        try:
            return parse(text)
        except HarnessError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = parse.__name__
    return wrapped


def capture_target(text: str) -> str:
    """An argparse ``type`` for a capture target (``IFACE`` or ``ssh://user@host[:port]/IFACE``),
    checked at parse time so a dry run rejects what a real run would; returns the text."""
    from harness.capture.spec import parse_capture_spec

    checked(parse_capture_spec)(text)
    return text


def add_format(parser: argparse.ArgumentParser, csv: bool = True) -> None:
    """``--format table|csv|json`` (csv only where the result is one table): how the result is printed."""
    choices = ("table", "csv", "json") if csv else ("table", "json")
    parser.add_argument(
        "--format", choices=choices, default="table", help="how to print the result (default table; json on stdout)"
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``/``-q``: no progress bars (they are drawn on stderr, and only on a terminal)."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars on stderr")


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``--verbose``/``-v``: also show what the audio libraries print while PortAudio probes the devices."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show what ALSA and JACK print while PortAudio probes the sound cards (kept off the terminal otherwise)",
    )
