"""The espeak-ng command-line engine: a process per utterance, bit-identical from run to run."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cached_property
from pathlib import Path

from harness.errors import ToolMissing
from harness.speech.engine import RENDER_TIMEOUT_S, Engine, SpeechError
from harness.speech.voices import VoiceInfo

INSTALL_HINT = "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)"


class EspeakEngine(Engine):
    name = "espeak"

    @cached_property
    def program(self) -> str:
        path = shutil.which("espeak-ng")
        if path is None:
            raise ToolMissing(INSTALL_HINT)
        return path

    def _run(self, args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [self.program, *args], input=stdin, capture_output=True, timeout=RENDER_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise SpeechError(f"espeak-ng did not finish within {RENDER_TIMEOUT_S:.0f} s") from None

    @cached_property
    def _version(self) -> str:
        out = self._run(["--version"]).stdout.decode("utf-8", "replace")
        found = re.search(r"text-to-speech:\s*(\S+)", out)
        return found.group(1) if found else out.strip()

    def version(self) -> str:
        return self._version

    def voices(self) -> list[VoiceInfo]:
        proc = self._run(["--voices"])
        has_mbrola = shutil.which("mbrola") is not None
        return [
            v
            for v in parse_voice_list(proc.stdout.decode("utf-8", "replace"))
            if has_mbrola or not v.id.startswith("mb/")  # MBROLA voices fail without the mbrola program
        ]

    def render(self, text: str, voice: str, rate: int, volume: float, out_path: Path) -> None:
        amplitude = max(0, min(200, round(volume * 100)))
        # Text goes in on stdin, so nothing in it can be taken for an option; -b 1 = UTF-8.
        args = ["-v", voice, "-s", str(int(rate)), "-a", str(amplitude), "-b", "1", "-w", str(out_path), "--stdin"]
        proc = self._run(args, text.encode("utf-8"))
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        if proc.returncode != 0:
            detail = message[-1] if message else f"exit status {proc.returncode}"
            if "voice does not exist" in detail:
                detail = f"unknown voice {voice!r} (see `harness voices --engine espeak`)"
            raise SpeechError(f"espeak-ng: {detail}")
        if not out_path.exists():
            raise SpeechError(f"espeak-ng wrote no audio for {text!r}")


def parse_voice_list(listing: str) -> list[VoiceInfo]:
    """Parse ``espeak-ng --voices``: one voice per line after a header.

    Columns: priority, language, age/gender, name, file, then "(lang priority)" pairs.
    The id is the file (e.g. "gmw/en-us"), which is unique, unlike the language.
    """
    voices = []
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        _, language, age_gender, name, file, *rest = fields
        others = re.findall(r"\(([^\s)]+)", " ".join(rest))
        gender = {"M": "Male", "F": "Female"}.get(age_gender.rpartition("/")[2])
        voices.append(VoiceInfo(file.lower(), name.replace("_", " "), (language, *others), gender))
    return voices
