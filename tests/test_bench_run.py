"""`harness run` on the virtual lab: real playback, real recording, real faults.

A responder thread stands in for the Echo: it listens to what the bench speaker plays (the
monitor of ``harness_out``) and, when a sound ends, plays an answer WAV into ``speaker_answer``,
which the run hears through ``virtual_mic``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from harness.audio import open_backend, resolve_device
from harness.audio.lab import lab_status, lab_up
from harness.audio.vad import FRAME_S, frame_levels
from harness.bench.markers import decode_marker
from harness.children import running_from_pid_file
from harness.correlate.run import timings_only
from harness.files import sha256_file
from harness.rundir.events import (
    AnswerChecked,
    AnswerHeard,
    CaptureStopped,
    DeviceLost,
    DeviceRestored,
    ItemCompleted,
    MarkerSent,
    NoAnswer,
    Retry,
    RunFinished,
    RunInterrupted,
    RunResumed,
    StopSpoken,
    TrySuperseded,
    TurnSkipped,
    UtteranceCut,
    UtteranceEnded,
    UtteranceStarted,
    events_json_schema,
    read_events,
)
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest
from harness.script import SpeechSettings
from harness.speech import synthesize
from harness.wav import read_wav

from conftest import require_root, require_tool

pytestmark = pytest.mark.lab

# Utterances last ~1.9 s, the stop phrase ~0.7 s: the responder never answers a sound under this.
STOP_PHRASE_MAX_S = 1.2


LONG = ["ask weather for today", "ask weather about rain", "ask weather for tomorrow", "ask weather for the week"]
SHORT = ["one", "two", "three", "four"]


def persona_yaml(
    items: int,
    *,
    retries: int = 0,
    follow_up: bool = False,
    timeout_s: float = 1.5,
    max_answer_s: float = 2.5,
    texts: list[str] = LONG,
) -> str:
    lines = [
        "persona: {id: tiny, name: Tiny, category: Test}",
        f"session: {{gap_s: 0.2, answer_timeout_s: {timeout_s}, max_answer_s: {max_answer_s}, min_silence_s: 0.3, "
        f"retries: {retries}}}",
        "skills:",
        "  - {id: weather, name: Weather, invocation: weather, utterances: [",
    ]
    for n in range(items):
        extra = ", follow_ups: [Thanks]" if follow_up and n == 1 else ""
        lines.append(f"      {{text: 'Alexa, {texts[n % len(texts)]}.'{extra}}},")
    lines.append("    ]}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "speech-cache"


@pytest.fixture
def answers(cache: Path) -> dict[str, Path]:
    """Answer WAVs of the pretend Echo (espeak, another voice than the bench's)."""
    voice = SpeechSettings(voice="en-us+f2", rate=190)
    texts = {
        "sunny": "It will be sunny.",
        "rain": "No rain is expected.",
        "long": "Here is a long forecast with many details about wind, clouds, rain and sun for the whole day.",
    }
    return {key: synthesize(text, voice, cache).path for key, text in texts.items()}


class Responder(threading.Thread):
    """Plays ``policy(n, heard_s)`` (a WAV or None) after the n-th utterance it hears on harness_out
    (sounds shorter than the longest stop phrase are not answered and not counted)."""

    def __init__(self, lab, policy: Callable[[int, float], Path | None], threshold_dbfs: float = -45.0) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.policy = policy
        self.threshold = threshold_dbfs
        self.heard: list[float] = []
        self.played: list[tuple[Path, int]] = []  # (wav, onset_wall_ns as the lab logged it)
        self.errors: list[BaseException] = []
        self._blocks: queue.Queue[np.ndarray] = queue.Queue()
        self._halt = threading.Event()
        self._ready = threading.Event()

    def __enter__(self) -> Responder:
        self.start()
        assert self._ready.wait(10), "responder did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join(10)
        if self.errors:
            raise self.errors[0]

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by __exit__ in the test's thread
            self.errors.append(exc)
            self._ready.set()

    def _run(self) -> None:
        backend = open_backend("sounddevice")
        ear = resolve_device(self.lab.monitor, "input")
        mouth = resolve_device(self.lab.answer_output, "output")
        rate, frame = 16000, int(16000 * FRAME_S)
        stream = backend.open_input(ear, rate, lambda block, *_: self._blocks.put(block), 0.05)
        stream.start()
        self._ready.set()
        pending = np.zeros(0, dtype=np.float32)
        frame_no, first, last = 0, None, None  # frame numbers of the current sound's first and last voice
        try:
            while not self._halt.is_set():
                try:
                    pending = np.concatenate([pending, self._blocks.get(timeout=0.1)])
                except queue.Empty:
                    continue
                n = len(pending) // frame
                levels, pending = frame_levels(pending[: n * frame], frame), pending[n * frame :]
                for level in levels:
                    frame_no += 1
                    if level > self.threshold:
                        first, last = first if first is not None else frame_no, frame_no
                    elif last is not None and (frame_no - last) * FRAME_S >= 0.25:
                        self._answer(backend, mouth, (last - first + 1) * FRAME_S)
                        first = last = None
        finally:
            stream.close()

    def _answer(self, backend, mouth, heard_s: float) -> None:
        self.heard.append(heard_s)
        if heard_s < STOP_PHRASE_MAX_S:
            return
        wav = self.policy(sum(h >= STOP_PHRASE_MAX_S for h in self.heard) - 1, heard_s)
        if wav is None:
            return
        time.sleep(0.2)
        samples, rate = read_wav(wav)
        timing = backend.play(samples, rate, mouth)
        self.played.append((wav, timing.onset_wall_ns))
        while not self._blocks.empty():  # what played meanwhile was the bench waiting: drop it
            self._blocks.get_nowait()


def harness_run(args: list[str], env: dict[str, str], cwd: Path, **popen: object) -> subprocess.Popen:
    command = [sys.executable, "-m", "harness.cli.main", "run", *args]
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run_dirs(runs: Path) -> list[Path]:
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


@pytest.fixture
def bench(lab, tmp_path: Path, cache: Path):
    """Start `harness run` subprocesses against the lab, in a scratch folder."""
    the_lab = lab
    env = {**os.environ, **lab.env, "HARNESS_CACHE": str(cache.parent / "cache"), "COLUMNS": "120"}

    class Bench:
        root = tmp_path
        lab = the_lab
        runs = tmp_path / "runs"

        def script(self, text: str, name: str = "tiny.yaml") -> Path:
            path = tmp_path / name
            path.write_text(text)
            return path

        def start(self, *args: str, listen: bool = True) -> subprocess.Popen:
            devices = ["--output-device", "harness_out"]
            if listen:
                devices += ["--input-device", "virtual_mic", "--calibration", "0.3"]
            return harness_run([*args, *devices, "--runs-dir", str(self.runs)], env, tmp_path)

        @contextmanager
        def captured(self, script: Path, *args: str) -> Iterator[subprocess.Popen]:
            """A run (not listening) sending its markers to a local sink, its traffic captured on ``lo``."""
            require_root()
            require_tool("tcpdump")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
                sink.bind(("127.0.0.1", 0))
                marker = f"127.0.0.1:{sink.getsockname()[1]}"
                capture = ["--capture", "lo", "--capture-device", "127.0.0.1", "--capture-tail", "0.3"]
                yield self.start(str(script), "--marker", marker, *capture, *args, listen=False)

        def resume(self, run_dir: Path, *args: str) -> subprocess.Popen:
            return harness_run(["--resume", str(run_dir), *args], env, tmp_path)

    return Bench()


def events_of(run_dir: Path) -> list:
    return read_events(RunDir(run_dir).events).events


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def check_log(run_dir: Path, plan_items: int) -> list:
    """Every line validates (models and exported JSON Schema), seqs strictly increase, every item
    completed exactly once."""
    validator = jsonschema.Draft202012Validator(events_json_schema())
    for line in (RunDir(run_dir).events).read_text().splitlines():
        if line.strip():
            validator.validate(json.loads(line))
    events = events_of(run_dir)
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    assert {e.run_id for e in events} == {run_dir.name}
    completed = Counter(e.plan_index for e in of(events, ItemCompleted))
    assert completed == Counter(range(plan_items))
    return events


def test_run_hears_answers_and_sends_markers(bench, answers: dict[str, Path]) -> None:
    order = [answers["sunny"], answers["rain"]]
    script = bench.script(persona_yaml(2))
    responder = Responder(bench.lab, lambda n, _: order[n % 2])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, responder:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.2)
        port = rx.getsockname()[1]
        status, out, err = finish(bench.start(str(script), "--marker", f"127.0.0.1:{port}", "--transcribe"))
        datagrams = []
        while True:
            try:
                datagrams.append(rx.recv(2048))
            except TimeoutError:
                break
    assert status == 0, err
    (run_dir,) = run_dirs(bench.runs)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    events = check_log(run_dir, 2)
    ended = {e.started_seq: e for e in of(events, UtteranceEnded)}
    heard = of(events, AnswerHeard)
    assert len(heard) == 2 and not of(events, NoAnswer)
    for answer, (wav, played_onset) in zip(heard, responder.played, strict=True):
        utterance = ended[answer.started_seq]
        assert answer.onset_wall_ns > utterance.end_wall_ns
        played, played_rate = read_wav(wav)
        # The WAV starts with a short silent pad: the voice begins at its first 2 ms above -60 dBFS.
        fine = int(played_rate * 0.002)
        voice_ns = int(np.argmax(frame_levels(played, fine) > -60.0)) * fine * 1_000_000_000 // played_rate
        assert abs(answer.onset_wall_ns - (played_onset + voice_ns)) < 10_000_000  # the responder's DAC onset
        assert not answer.too_long and not answer.same_as_previous
        assert abs(answer.duration_s - len(played) / played_rate) < 0.1
        assert answer.transcript is None  # the worker's answer_checked carries it
        path = run_dir / answer.path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sha256_file(path) == answer.sha256
        samples, rate = read_wav(path)
        assert rate == answer.sample_rate and answer.end_index < len(samples)
    for utterance in ended.values():
        assert utterance.end_wall_ns > utterance.onset_wall_ns and utterance.frames > 0
    for started in of(events, UtteranceStarted):
        assert sha256_file(run_dir / started.audio_path) == started.audio_sha256
    markers = [decode_marker(d) for d in datagrams]
    logged = of(events, MarkerSent)
    assert len(markers) == len(logged) == 2
    for marker, entry in zip(markers, logged, strict=True):
        assert marker is not None and marker.run_id == run_dir.name
        assert bytes.fromhex(entry.payload_hex) == datagrams[logged.index(entry)]
        assert marker.onset_wall_ns == entry.onset_wall_ns and marker.seq == entry.started_seq
        # the marker leaves with the first onset estimate; the logged one may be refined a little
        assert abs(marker.onset_wall_ns - ended[marker.seq].onset_wall_ns) < 1_000_000
    assert of(events, RunFinished)[0].answers == 2
    # --transcribe: each answer checked once, by the worker, before the run finished; no expect: unchecked
    checks = of(events, AnswerChecked)
    assert sorted(c.answer_seq for c in checks) == [a.seq for a in heard]
    assert all(c.result == "unchecked" and isinstance(c.transcript, str) for c in checks)
    assert all(c.seq < of(events, RunFinished)[0].seq for c in checks)
    assert "none of the 2 utterances has an expect" in out
    manifest = read_manifest(RunDir(run_dir))
    assert manifest.status == "finished"
    assert manifest.plan == ["tiny:weather/1#1", "tiny:weather/2#1"]
    assert manifest.scripts[0].sha256 == sha256_file(script)


def test_no_answer_is_retried(bench) -> None:
    script = bench.script(persona_yaml(1, retries=1, timeout_s=0.8, texts=SHORT))
    status, out, err = finish(bench.start(str(script)))  # nobody answers
    assert status == 0, err
    assert "(try 1/2)" in out and "retry 2/2: Alexa, one." in out and "(try 2/2)" in out
    (run_dir,) = run_dirs(bench.runs)
    events = check_log(run_dir, 1)
    kinds = [e.event for e in events if e.event in {"utterance_started", "no_answer", "retry", "item_completed"}]
    assert kinds == ["utterance_started", "no_answer", "retry", "utterance_started", "no_answer", "item_completed"]
    tries = of(events, NoAnswer)
    assert [(t.attempt, t.final) for t in tries] == [(1, False), (2, True)]
    assert of(events, Retry)[0].attempt == 2


def test_stop_phrase_after_a_repeated_or_too_long_answer(bench, answers: dict[str, Path]) -> None:
    script = bench.script(persona_yaml(3, max_answer_s=1.5))
    order = [answers["sunny"], answers["sunny"], answers["long"]]
    with Responder(bench.lab, lambda n, _: order[n] if n < 3 else None) as responder:
        status, out, err = finish(bench.start(str(script)))
    assert status == 0, err
    assert "(same as the previous answer)" in out and "(cut at the listen limit)" in out
    (run_dir,) = run_dirs(bench.runs)
    events = check_log(run_dir, 3)
    heard = of(events, AnswerHeard)
    assert [(a.same_as_previous, a.too_long) for a in heard] == [(False, False), (True, False), (False, True)]
    stops = of(events, StopSpoken)
    assert [(s.plan_index, s.reason) for s in stops] == [(1, "repeated_answer"), (2, "too_long")]
    assert all(s.onset_wall_ns > a.onset_wall_ns for s, a in zip(stops, heard[1:], strict=True))
    assert any(h < STOP_PHRASE_MAX_S for h in responder.heard)  # the stop phrase reached the "Echo"


def wait_for(run_dir_parent: Path, proc: subprocess.Popen, event: str, nth: int, timeout: float = 60) -> Path:
    """Wait until the log of the (only) run holds ``nth`` events of kind ``event``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        dirs = run_dirs(run_dir_parent)
        log = RunDir(dirs[0]).events if dirs else None
        if log and log.exists():
            kinds = [json.loads(line).get("event") for line in log.read_bytes().splitlines() if line.endswith(b"}")]
            if kinds.count(event) >= nth:
                return dirs[0]
        time.sleep(0.01)
    raise AssertionError(f"no {nth} x {event} within {timeout} s")


def test_resume_after_kill_9_at_several_points(bench) -> None:
    script = bench.script(persona_yaml(4, follow_up=True, timeout_s=0.5, texts=SHORT))
    plan_items = 4
    # mid-play of item 0; listening after item 2's utterance ended (item 1 got no answer: its follow-up
    # is skipped); in the gap after item 2
    kill_points = [("utterance_started", 1), ("utterance_ended", 3), ("item_completed", 3)]
    proc = bench.start(str(script))
    run_dir = None
    prefix = b""
    for event, nth in kill_points:
        run_dir = wait_for(bench.runs, proc, event, nth)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        now = (RunDir(run_dir).events).read_bytes()
        assert now.startswith(prefix)  # nothing logged before was rewritten
        prefix = now
        proc = bench.resume(run_dir)
    status, _, err = finish(proc)
    assert status == 0, err
    assert (RunDir(run_dir).events).read_bytes().startswith(prefix)
    events = check_log(run_dir, plan_items)
    assert len(of(events, RunResumed)) == len(kill_points)
    cuts = of(events, UtteranceCut)
    assert cuts and {c.reason for c in cuts} == {"crash"}
    assert cuts[0].plan_index == 0  # killed mid-play of the first utterance
    started = {e.seq for e in of(events, UtteranceStarted)}
    closed = [e.started_seq for e in events if isinstance(e, UtteranceEnded | UtteranceCut)]
    assert sorted(closed) == sorted(started)  # every utterance either ended or was logged as cut
    assert read_manifest(RunDir(run_dir)).status == "finished"
    assert len(read_manifest(RunDir(run_dir)).segments) == len(kill_points) + 1
    # every try of an item under way at a kill is superseded; the keys of the tries stay unique
    superseded = {e.started_seq for e in of(events, TrySuperseded)}
    assert superseded and superseded <= started
    keys = [(e.plan_index, e.turn, e.attempt) for e in of(events, UtteranceStarted)]
    assert len(keys) == len(set(keys))
    assert [(e.plan_index, e.turn, e.after_turn) for e in of(events, TurnSkipped)] == [(1, 1, 0)]


def test_ctrl_c_while_listening_then_resume_supersedes_the_try(bench, answers: dict[str, Path]) -> None:
    """Ctrl-C while the bench listens to item 1's answer: the answer is recorded, the run stops
    before the follow-up; the resume speaks item 1 again as try 2 and marks try 1 superseded."""
    script = bench.script(persona_yaml(2, follow_up=True))
    order = [answers["sunny"], answers["rain"]]
    with Responder(bench.lab, lambda n, _: order[n % 2]):
        proc = bench.start(str(script))
        run_dir = wait_for(bench.runs, proc, "utterance_ended", 2)  # item 1's utterance: listening now
        proc.send_signal(signal.SIGINT)
        status, out, err = finish(proc)
        assert status == 130, err
        first = events_of(run_dir)
        assert [e.plan_index for e in of(first, AnswerHeard)] == [0, 1] and len(of(first, ItemCompleted)) == 1
        status, out, err = finish(bench.resume(run_dir))
    assert status == 0, err
    events = check_log(run_dir, 2)
    starts = of(events, UtteranceStarted)
    item1 = [(e.turn, e.attempt) for e in starts if e.plan_index == 1]
    assert item1 == [(0, 1), (0, 2), (1, 1)]  # the resumed opening is try 2, its follow-up try 1
    (marked,) = of(events, TrySuperseded)
    assert marked.started_seq == starts[1].seq and (marked.plan_index, marked.turn, marked.attempt) == (1, 0, 1)
    assert marked.seq < of(events, RunResumed)[0].seq
    assert "follow-up 1 of utterance weather/2: Thanks" in out
    _, tables = timings_only(run_dir, transcribe=False)
    u = tables["utterances"]
    requests = u[u["kind"] == "request"]
    assert not requests.duplicated(["plan_index", "turn", "attempt"]).any()
    rows = requests.set_index(["plan_index", "turn", "attempt"])
    assert rows.loc[(1, 0, 1), "superseded"] and not rows.loc[(1, 0, 1), "final"]
    assert rows.loc[(1, 0, 2), "final"] and not rows.loc[(1, 0, 2), "superseded"]


def test_a_follow_up_is_skipped_when_its_opening_got_no_answer(bench) -> None:
    script = bench.script(persona_yaml(2, follow_up=True, timeout_s=0.5, texts=SHORT))
    status, out, err = finish(bench.start(str(script)))  # nobody answers
    assert status == 0, err
    (run_dir,) = run_dirs(bench.runs)
    events = check_log(run_dir, 2)
    (skipped,) = of(events, TurnSkipped)
    assert (skipped.plan_index, skipped.turn, skipped.after_turn, skipped.reason) == (1, 1, 0, "no_answer")
    assert skipped.text == "Thanks"
    assert "Thanks" not in [e.text for e in of(events, UtteranceStarted)]  # never spoken
    assert "follow-up 1 of utterance weather/2 skipped (turn 0 got no answer): Thanks" in out


def test_ctrl_c_finishes_the_utterance_and_resumes(bench) -> None:
    script = bench.script(persona_yaml(2, timeout_s=0.5, texts=SHORT))
    proc = bench.start(str(script))
    run_dir = wait_for(bench.runs, proc, "utterance_started", 1)
    proc.send_signal(signal.SIGINT)
    status, out, err = finish(proc)
    assert status == 130
    assert f"--resume {run_dir}" in out
    events = events_of(run_dir)
    assert events[-1].event == "run_interrupted" and of(events, UtteranceEnded)  # the utterance was finished
    assert not of(events, UtteranceCut)
    assert read_manifest(RunDir(run_dir)).status == "interrupted"
    status, _, err = finish(bench.resume(run_dir))
    assert status == 0, err
    check_log(run_dir, 2)


def kill_pulse(lab) -> None:
    """Kill the lab's sound server while the utterance just logged as started is playing.

    `utterance_started` is logged just before the stream opens; the pause lets playback get under
    way, so the kill never lands between PortAudio's open and start of the stream, where
    PortAudio's start itself blocks for good (a known limit, not the mid-play loss tested here).
    """
    time.sleep(0.25)
    pid = lab_status(lab.base).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while lab_status(lab.base).running:
        time.sleep(0.01)


def test_device_lost_mid_run_then_restored(bench, lab) -> None:
    script = bench.script(persona_yaml(3))
    proc = bench.start(str(script), "--device-wait", "30", listen=False)
    try:
        run_dir = wait_for(bench.runs, proc, "utterance_started", 2)
        time.sleep(0.3)  # mid-play
        kill_pulse(lab)
        time.sleep(1.0)
    finally:
        lab_up(lab.base)
    status, _, err = finish(proc)
    assert status == 0, err
    events = check_log(run_dir, 3)
    lost, restored = of(events, DeviceLost), of(events, DeviceRestored)
    assert lost and restored and lost[0].kind == "output" and lost[0].seq < restored[0].seq
    cut = of(events, UtteranceCut)
    assert cut and cut[0].reason == "device_lost" and cut[0].plan_index == 1
    # the cut utterance was spoken again after the device came back
    assert any(e.plan_index == 1 and e.seq > restored[0].seq for e in of(events, UtteranceEnded))


def test_device_gone_exits_with_a_resumable_run(bench, lab) -> None:
    script = bench.script(persona_yaml(2, texts=SHORT))
    proc = bench.start(str(script), "--device-wait", "1.5", listen=False)
    try:
        run_dir = wait_for(bench.runs, proc, "utterance_started", 1)
        kill_pulse(lab)
        status, _, err = finish(proc)
    finally:
        lab_up(lab.base)
    assert status == 1
    # (ALSA may print its own complaints to stderr before it; the harness says one line)
    last = err.strip().splitlines()[-1]
    assert last.startswith("harness: error: output device") and last.endswith(f"--resume {run_dir}")
    assert "Traceback" not in err
    events = events_of(run_dir)
    stop = of(events, RunInterrupted)
    assert stop and stop[-1].reason == "device_lost"
    status, _, err = finish(bench.resume(run_dir))
    assert status == 0, err
    check_log(run_dir, 2)


def test_an_unknown_device_is_one_line_and_no_run_directory(bench) -> None:
    script = bench.script(persona_yaml(1))
    env = {**os.environ, **bench.lab.env}
    proc = harness_run(
        [str(script), "--output-device", "no-such-speaker", "--runs-dir", str(bench.runs)], env, bench.root
    )
    status, _, err = finish(proc)
    assert status == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("harness: error: no output device matches 'no-such-speaker'") and "harness_out" in last
    assert not bench.runs.exists()


def test_markers_land_in_the_run_capture(bench) -> None:
    dpkt = pytest.importorskip("dpkt")
    script = bench.script(persona_yaml(2, texts=SHORT))
    with bench.captured(script) as proc:
        status, _, err = finish(proc)
    assert status == 0, err
    (run_dir,) = run_dirs(bench.runs)
    events = events_of(run_dir)
    (stopped,) = of(events, CaptureStopped)
    manifest = read_manifest(RunDir(run_dir))
    assert [f.sha256 for f in manifest.captures] == [f.sha256 for f in stopped.files] != []
    found = {}
    for entry in stopped.files:
        path = run_dir / entry.path
        assert sha256_file(path) == entry.sha256 and stat.S_IMODE(path.stat().st_mode) == 0o600
        with open(path, "rb") as fh:
            reader = dpkt.pcapng.Reader(fh) if fh.read(4) == b"\x0a\x0d\x0d\x0a" else None
            fh.seek(0)
            for ts, frame in reader or dpkt.pcap.UniversalReader(fh):
                payload = bytes(frame)
                at = payload.find(b"HRNS")
                marker = decode_marker(payload[at:]) if at >= 0 else None
                if marker is not None:
                    found[marker.seq] = (marker, ts)
    logged = of(events, MarkerSent)
    assert sorted(found) == sorted(m.started_seq for m in logged) and len(logged) == 2
    for entry in logged:
        marker, ts = found[entry.started_seq]
        assert marker.sent_wall_ns == entry.sent_wall_ns
        assert abs(float(ts) * 1e9 - marker.sent_wall_ns) < 50e6  # the capture's clock is this host's


def test_a_capture_is_listed_from_its_start_and_survives_kill_9(bench) -> None:
    script = bench.script(persona_yaml(3, texts=SHORT))
    with bench.captured(script) as proc:
        run_dir = wait_for(bench.runs, proc, "marker_sent", 1)
        run = RunDir(run_dir)
        (listed,) = read_manifest(run).captures  # in the manifest before the first utterance ended
        assert listed.state == "writing" and listed.sha256 is None and (run_dir / listed.path).is_file()
        (pid_file,) = run.capture.glob(".capture-*.pid")
        assert running_from_pid_file(pid_file) is not None
        time.sleep(0.3)  # the marker reaches the capture
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while running_from_pid_file(pid_file) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running_from_pid_file(pid_file) is None  # the capture died with the bench
        status, _, err = finish(bench.resume(run_dir))
    assert status == 0, err
    first, second = read_manifest(run).captures
    assert (
        first.state == "recovered" and first.path == listed.path and sha256_file(run_dir / first.path) == first.sha256
    )
    assert second.state == "closed" and sha256_file(run_dir / second.path) == second.sha256
    assert {run.relative(p) for p in run.capture_files()} == {first.path, second.path}
    stopped = of(events_of(run_dir), CaptureStopped)
    assert [f.state for s in stopped for f in s.files] == ["recovered", "closed"]
    from harness.correlate import correlate_run  # a later stage reads what the bench kept

    result = correlate_run(run_dir)
    assert result.summary.clock.method == "markers"
    # every logged marker, the pre-crash ones too (one sent just before the kill may be unlogged)
    assert result.summary.clock.markers >= len(of(events_of(run_dir), MarkerSent))
    assert not [w for w in result.warnings if "capture" in w]


def test_correlate_names_capture_files_the_manifest_does_not_list(bench) -> None:
    script = bench.script(persona_yaml(1, texts=SHORT))
    with bench.captured(script) as proc:
        status, _, err = finish(proc)
    assert status == 0, err
    (run_dir,) = run_dirs(bench.runs)
    run = RunDir(run_dir)
    (listed,) = read_manifest(run).captures
    stray = run.capture / "capture-20250101T000000Z-abcdef.pcap"
    stray.write_bytes((run_dir / listed.path).read_bytes())
    from harness.correlate import correlate_run

    result = correlate_run(run_dir)
    assert any(str(stray) in w and "not in the manifest" in w for w in result.warnings)
    assert result.summary.captures == [str(run_dir / listed.path)]


def test_a_full_disk_stops_the_run_resumable_and_loses_nothing(bench, tmp_path: Path) -> None:
    """The runs folder is a real 16 MiB tmpfs; the test fills it while the run speaks."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    bench.runs.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(bench.runs)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        script = bench.script(persona_yaml(3, texts=SHORT))
        proc = bench.start(str(script), listen=False)
        run_dir = wait_for(bench.runs, proc, "utterance_ended", 1)
        before = RunDir(run_dir).events.read_bytes()
        filler = bench.runs / "filler"
        with open(filler, "wb") as fh:
            with contextlib.suppress(OSError):  # ENOSPC: the disk is full now
                while True:
                    fh.write(bytes(1 << 16))
                    fh.flush()
        status, out, err = finish(proc)
        assert status == 1
        (line,) = err.strip().splitlines()  # one line, no traceback
        assert "No space left on device" in line and f"--resume {run_dir}" in line
        events = events_of(run_dir)
        assert RunDir(run_dir).events.read_bytes().startswith(before)
        assert events[-1].event == "run_interrupted" and events[-1].reason == "output"
        assert read_manifest(RunDir(run_dir)).status == "interrupted"
        filler.unlink()
        status, _, err = finish(bench.resume(run_dir, "--output-device", "harness_out"))
        assert status == 0, err
        check_log(run_dir, 3)
        assert not RunDir(run_dir).reserve.exists()
    finally:
        subprocess.run(["umount", "-l", str(bench.runs)], check=False)


def test_a_rotating_capture_is_listed_file_by_file_and_read_as_one(bench) -> None:
    script = bench.script(persona_yaml(4, texts=SHORT))
    with bench.captured(script, "--capture-rotate-s", "1", "--capture-filter", "udp") as proc:
        status, _, err = finish(proc)
    assert status == 0, err
    (run_dir,) = run_dirs(bench.runs)
    run = RunDir(run_dir)
    manifest = read_manifest(run)
    assert manifest.settings.capture_rotate_s == 1 and manifest.settings.capture_filter == "udp"
    files = manifest.captures
    assert len(files) >= 2 and {f.state for f in files} == {"closed"}
    assert [run.resolve(f.path) for f in files] == run.capture_files()  # every file, in order
    assert all(sha256_file(run.resolve(f.path)) == f.sha256 for f in files)
    from harness.correlate import correlate_run

    result = correlate_run(run_dir)
    assert result.summary.clock.markers == len(of(events_of(run_dir), MarkerSent)) == 4
