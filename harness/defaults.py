"""The bench's defaults, in one place (as python-sounddevice keeps its ``default``).

The CLI shows these in ``--help`` and the stages fall back to them, so a default is changed here
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Defaults:
    backends: tuple[str, ...] = ("sounddevice", "pyaudio")
    """Audio back ends, both on PortAudio."""
    backend: str = "sounddevice"
    """The back end used when none is given."""
    runs_dir: Path = Path("runs")
    """Where new run directories go."""
    crawls_dir: Path = Path("crawls")
    """Where new crawl directories go."""
    chromium: str = "/usr/bin/chromium"
    """The browser the crawl drives (Debian's Chromium; never a downloaded one)."""
    login_url: str = "https://www.amazon.com/"
    """The page `harness crawl login` opens for signing in to the persona's account."""
    lab_output: str = "harness_out"
    """The virtual lab's bench speaker (a null sink)."""
    lab_output_monitor: str = "harness_out_monitor"
    """What the bench speaker plays, as an input (the twin's ear)."""
    lab_answer_output: str = "speaker_answer"
    """The virtual lab's Echo speaker (the twin's mouth)."""
    lab_input: str = "virtual_mic"
    """The bench microphone in the virtual lab: hears speaker_answer."""
    capture_tail_s: float = 2.0
    """Seconds the capture goes on after the last answer."""
    twin_quiet_s: float = 30.0
    """With the twin: seconds of background-only capture before the first and after the last
    utterance, which attribution learns the background from (the last utterance's window takes
    part of the tail; with 20 s a run held under the 30 s of background attribution needs)."""
    device_wait_s: float = 60.0
    """How long a lost device is waited for before the run stops (resumable)."""
    calibration_s: float = 2.0
    """Seconds of room noise measured at the start to set the listening threshold."""
    listen_rate: int = 16_000
    """Sample rate answers are recorded at: plenty for speech, and what the recogniser takes."""


default = Defaults()
