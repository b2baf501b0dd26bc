"""Runs pyttsx3 for one request in a fresh process (started by the pyttsx3 engine, not by users).

Reads one JSON request on stdin, writes one JSON reply on stdout. Standard library and pyttsx3
only, so the process starts fast. Why a fresh process per utterance: pyttsx3's espeak driver
keeps process-wide state (espeak is initialised once, its callback and pending file persist), and
libespeak-ng's output for a text depends on what it synthesised before in the same process;
a fresh process gives the same bytes as the espeak-ng CLI every time.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
import wave

POLL_S = 0.01
STABLE_POLLS = 3


def info() -> dict:
    from importlib.metadata import version

    import pyttsx3

    engine = pyttsx3.init()
    driver = engine.driver_name
    if driver == "espeak":
        from pyttsx3.drivers import _espeak

        driver_version = (_espeak.Info(None) or b"").decode("utf-8", "replace")
    else:
        driver_version = platform.platform()
    voices = [
        {"id": v.id, "name": v.name, "languages": [str(x) for x in (v.languages or [])], "gender": v.gender}
        for v in engine.getProperty("voices")
    ]
    return {"pyttsx3": version("pyttsx3"), "driver": driver, "driver_version": driver_version, "voices": voices}


def wait_for_complete_wav(path: str, timeout_s: float) -> None:
    """Return once ``path`` is a WAV whose size stopped changing and whose header matches its data.

    Some drivers write the file after runAndWait() has returned.
    """
    deadline = time.monotonic() + timeout_s
    sizes: list[int] = []
    while time.monotonic() < deadline:
        size = os.path.getsize(path) if os.path.exists(path) else -1
        sizes = [*sizes[-(STABLE_POLLS - 1) :], size]
        if size > 44 and len(sizes) == STABLE_POLLS and len(set(sizes)) == 1:
            with wave.open(path, "rb") as wf:
                expected = wf.getnframes() * wf.getsampwidth() * wf.getnchannels()
            if expected > 0 and size >= expected + 44:
                return
        time.sleep(POLL_S)
    raise TimeoutError(f"pyttsx3 did not finish writing {path} within {timeout_s:.0f} s")


def apply_properties(engine, job: dict) -> None:
    """Set voice, rate and volume so that they hold for the next utterance.

    With the espeak driver, libespeak-ng applies property changes asynchronously and in fresh
    processes the driver's own default rate (200) won over ours in 2-5% of utterances; draining
    espeak's queue and setting the properties again made 0 of 650 go wrong.
    """
    passes = 2 if engine.driver_name == "espeak" else 1
    for n in range(passes):
        if n:
            from pyttsx3.drivers import _espeak

            _espeak.Synchronize()
        engine.setProperty("voice", job["voice"])
        engine.setProperty("rate", int(job["rate"]))
        engine.setProperty("volume", float(job["volume"]))


def render(job: dict) -> dict:
    import pyttsx3

    engine = pyttsx3.init()
    finished = threading.Event()
    outcome: dict = {}

    def on_finished(name: object = None, completed: bool = True) -> None:
        outcome["completed"] = completed
        finished.set()

    engine.connect("finished-utterance", on_finished)
    apply_properties(engine, job)
    # One utterance per runAndWait: queued save_to_file calls only write the last file.
    engine.save_to_file(job["text"], job["out"])
    engine.runAndWait()
    if not finished.wait(job["timeout_s"]):
        raise TimeoutError("pyttsx3 never reported the end of the utterance")
    if not outcome["completed"]:
        raise RuntimeError("pyttsx3 stopped before the end of the utterance")
    wait_for_complete_wav(job["out"], job["timeout_s"])
    return {"ok": True}


def main() -> int:
    reply_fd = os.dup(1)
    # pyttsx3 prints "Audio saved to ..." and drivers may chatter: keep our stdout for the reply only.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    request = json.loads(sys.stdin.read())
    try:
        reply = info() if request["op"] == "info" else render(request)
        status = 0
    except ImportError as exc:
        reply, status = {"error": f"pyttsx3 is not usable: {exc}", "missing": True}, 1
    except OSError as exc:
        reply, status = {"error": f"{type(exc).__name__}: {exc}", "missing": "espeak" in str(exc).lower()}, 1
    except Exception as exc:  # noqa: BLE001 - the parent turns any failure into a one-line error
        reply, status = {"error": f"{type(exc).__name__}: {exc}"}, 1
    os.write(reply_fd, json.dumps(reply).encode("utf-8"))
    return status


if __name__ == "__main__":
    sys.exit(main())
