"""The pyttsx3 engine (espeak-ng on Linux, SAPI5 on Windows, NSSS on macOS), made dependable.

Each request runs in a fresh worker process (see pyttsx3_worker for why); the parent resolves
espeak-style voice ids to the driver's own voices, because pyttsx3 silently falls back to its
default voice when given an unknown one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from functools import cached_property
from pathlib import Path

from harness.errors import ToolMissing
from harness.speech.engine import RENDER_TIMEOUT_S, Engine, SpeechError
from harness.speech.voices import VoiceInfo, match_voice, parse_voice

WORKER = Path(__file__).with_name("pyttsx3_worker.py")
INSTALL_HINT = "pip install pyttsx3 (on Linux it also needs espeak-ng: apt-get install espeak-ng)"


class Pyttsx3Engine(Engine):
    name = "pyttsx3"

    def _call(self, request: dict) -> dict:
        if importlib.util.find_spec("pyttsx3") is None:
            raise ToolMissing(f"pyttsx3 is not installed ({INSTALL_HINT})")
        try:
            # -P: do not put this package's folder on sys.path in the worker.
            proc = subprocess.run(
                [sys.executable, "-P", str(WORKER)],
                input=json.dumps(request).encode("utf-8"),
                capture_output=True,
                timeout=RENDER_TIMEOUT_S + 10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SpeechError(f"pyttsx3 did not finish within {RENDER_TIMEOUT_S:.0f} s") from None
        try:
            reply = json.loads(proc.stdout or b"{}")
        except json.JSONDecodeError:
            reply = {}
        if proc.returncode != 0 or "error" in reply:
            detail = reply.get("error") or proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
            if reply.get("missing"):
                raise ToolMissing(f"{detail} ({INSTALL_HINT})")
            raise SpeechError(f"pyttsx3: {detail}")
        return reply

    @cached_property
    def _info(self) -> dict:
        return self._call({"op": "info"})

    def version(self) -> str:
        info = self._info
        return f"pyttsx3 {info['pyttsx3']}; {info['driver']} {info['driver_version']}"

    def voices(self) -> list[VoiceInfo]:
        return [VoiceInfo(v["id"], v["name"], tuple(v["languages"]), v["gender"]) for v in self._info["voices"]]

    def driver_voice(self, voice: str) -> str:
        """The driver's voice id for an espeak-style id (the espeak driver keeps the +variant)."""
        request = parse_voice(voice)
        found = match_voice(request, self.voices())
        if found is None:
            raise SpeechError(f"pyttsx3: no voice matches {voice!r} (see `harness voices --engine pyttsx3`)")
        if self._info["driver"] == "espeak" and request.variant:
            return f"{found.id}+{request.variant}"
        return found.id

    def render(self, text: str, voice: str, rate: int, volume: float, out_path: Path) -> None:
        job = {
            "op": "render",
            "text": text,
            "voice": self.driver_voice(voice),
            "rate": int(rate),
            "volume": float(volume),
            "out": str(out_path),
            "timeout_s": RENDER_TIMEOUT_S,
        }
        self._call(job)
