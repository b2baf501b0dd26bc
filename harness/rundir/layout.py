"""Where everything of a run lives: the one place that knows the run directory's file names.

```
runs/<run_id>/            0700
  manifest.json           what the run was made of (rewritten atomically)
  events.jsonl            the bench's append-only timing log
  scripts/ speech/        the scripts and every WAV as played
  answers/                the answers, one WAV per try
  capture/                pcap files
  truth.jsonl             twin runs only: what the simulated Echo heard, said and sent
  analysis/               the correlation's tables (CSV + Parquet) and summary.json
  report.html
```
Paths stored inside the run's files are relative to the run directory (:meth:`RunDir.relative`).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.files import natural_order, private_dir

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
TRUTH = "truth.jsonl"
REPORT = "report.html"
SUMMARY = "summary.json"


def new_run_id() -> str:
    """UTC start time plus a short random part: sorts by time, never collides in practice."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory; creating a folder makes it private (0700)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """A run directory that must already exist (one line naming it otherwise)."""
        root = Path(path)
        if not root.is_dir():
            raise HarnessError(f"{root}: not a directory")
        return cls(root)

    # ----- files ------------------------------------------------------------------------------

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def events(self) -> Path:
        return self.root / EVENTS

    @property
    def truth(self) -> Path:
        return self.root / TRUTH

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def summary(self) -> Path:
        return self.analysis / SUMMARY

    def table(self, name: str, suffix: str) -> Path:
        """``analysis/<name>.<suffix>`` (suffix ``csv`` or ``parquet``)."""
        return self.analysis / f"{name}.{suffix}"

    def script_copy(self, number: int, source: Path) -> Path:
        return self.scripts / f"{number:02d}-{source.name}"

    def speech_copy(self, sha256: str) -> Path:
        return self.speech / f"{sha256}.wav"

    def answer_wav(self, plan_index: int, turn: int, attempt: int, seq: int) -> Path:
        return self.answers / f"{plan_index:05d}-t{turn}-a{attempt}-s{seq}.wav"

    # ----- folders ----------------------------------------------------------------------------

    @property
    def scripts(self) -> Path:
        return self.root / "scripts"

    @property
    def speech(self) -> Path:
        return self.root / "speech"

    @property
    def answers(self) -> Path:
        return self.root / "answers"

    @property
    def capture(self) -> Path:
        return self.root / "capture"

    def capture_files(self) -> list[Path]:
        """Every capture file in the capture folder (not the hidden pid files and fetch folders), in order."""
        if not self.capture.is_dir():
            return []
        return sorted(
            (p for p in self.capture.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_order
        )

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def twin_work(self) -> Path:
        """The twin's scratch folder (its prepared answers)."""
        return self.root / ".twin"

    @property
    def reserve(self) -> Path:
        """Space the bench holds while it runs, freed to record how it stopped when the disk is full."""
        return self.root / ".reserve"

    @property
    def twin_pid(self) -> Path:
        """The running twin's process id (a resume waits for a twin its killed bench left stopping)."""
        return self.root / ".twin.pid"

    @property
    def twin_log(self) -> Path:
        return self.root / "twin.log"

    def create(self, *folders: Path) -> None:
        """Create the run directory and ``folders`` inside it, private (0700)."""
        private_dir(self.root)
        for folder in folders:
            private_dir(folder)

    # ----- paths stored in the run's files ----------------------------------------------------

    def relative(self, path: str | Path) -> str:
        """``path`` as stored in the run's files: relative to the run directory."""
        return os.path.relpath(path, self.root)

    def resolve(self, stored: str) -> Path:
        """A path stored in the run's files, as a path to open (absolute ones stay)."""
        path = Path(stored)
        return path if path.is_absolute() else self.root / path


# a rotating tcpdump names its files after the first: x.pcap, x.pcap1, ... or x-<UTC time>.pcap
_ROTATED = re.compile(r"(-\d{8}T\d{6}Z)?\.pcap\d*$")


def capture_siblings(path: Path) -> list[Path]:
    """``path`` and the files a rotating capture wrote after it under the same name, in order."""
    stem = _ROTATED.sub("", path.name)
    if not path.parent.is_dir():
        return []
    found = [p for p in path.parent.iterdir() if p.is_file() and _ROTATED.sub("", p.name) == stem]
    return sorted(found, key=natural_order)
