"""The bench run: speak the plan, listen for each answer, log every instant, survive faults.

One plan item is: the utterance (retried while no answer comes, up to the retries), the stop
phrase when the answer ran too long or repeated the previous one, then the follow-ups, then the
gap. Every step is an event in ``events.jsonl`` (see :mod:`harness.bench.events`).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.console import Console

from harness import __version__
from harness.audio import (
    Answer,
    calibrate_noise,
    listen,
    open_backend,
    resolve_device,
    same_answer,
)
from harness.audio.backend import PlaybackTiming
from harness.audio.devices import DeviceInfo as AudioDevice
from harness.bench.clock import (
    ClockPair,
    ClockStep,
    clock_pair,
    clock_status,
    step_between,
)
from harness.bench.events import (
    AnswerHeard,
    CaptureFileInfo,
    EventLog,
    UtteranceStarted,
    read_events,
)
from harness.bench.manifest import (
    ClockInfo,
    DeviceInfo,
    Manifest,
    ScriptInfo,
    Segment,
    Settings,
    host_info,
    read_manifest,
    versions,
    write_manifest,
)
from harness.bench.markers import Marker, MarkerSender, parse_target
from harness.bench.options import RunOptions
from harness.bench.plan import load_plan
from harness.bench.resume import run_state
from harness.bench.view import RunView
from harness.errors import DeviceError, HarnessError, InputError
from harness.files import PRIVATE_FILE, atomic_write_bytes, private_dir, sha256_file
from harness.script import Persona, PlanItem
from harness.speech import Synthesis, synthesize
from harness.wav import read_wav, write_wav

EVENTS_NAME = "events.jsonl"
CLOCK_SAMPLE_EVERY_S = 30.0
EXIT_INTERRUPTED = 130
# Answers are recorded at 16 kHz: plenty for speech, and what the offline recogniser takes.
LISTEN_RATE = 16_000


def new_run_id() -> str:
    """UTC start time plus a short random part: sorts by time, never collides in practice."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class _Stop(Exception):
    """The user asked the run to stop (first Ctrl-C or SIGTERM): stop between turns."""


class _DeviceGone(HarnessError):
    """A device stayed away longer than the run waits for it."""


class _Lost(Exception):
    def __init__(self, kind: str, device: str, error: DeviceError) -> None:
        super().__init__(str(error))
        self.kind, self.device, self.error = kind, device, error


class BenchRun:
    """One process's share of a run: a fresh start or a resume of a run directory."""

    def __init__(self, options: RunOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self._stop = threading.Event()
        self._open: UtteranceStarted | None = None
        self._last_answer: tuple[Answer, AnswerHeard] | None = None
        self._speech: dict[str, tuple[Synthesis, Any, int, str]] = {}
        self._clock_last: ClockPair | None = None
        self._clock_steps: list[ClockStep] = []
        self._captures: list[CaptureFileInfo] = []
        self._counts = {"answers": 0, "no_answers": 0}
        self._transcriber = None
        self._marker = None
        self._lost_since: float | None = None

    # ----- set-up -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Load the plan and resolve the devices (nothing is written yet)."""
        opts = self.options
        if opts.resume:
            self.run_dir = opts.resume
            self.manifest = read_manifest(self.run_dir)
            self.run_id = self.manifest.run_id
            copies = [self.run_dir / s.path for s in self.manifest.scripts]
            for info, copy in zip(self.manifest.scripts, copies, strict=True):
                if not copy.is_file() or sha256_file(copy) != info.sha256:
                    raise InputError(copy, "the run's copy of this script is missing or changed")
            seed = self.manifest.scripts[0].seed if self.manifest.scripts else None
            self.plan = load_plan(copies, seed)
            if self.plan.keys() != self.manifest.plan:
                raise InputError(self.run_dir / "manifest.json", "the scripts no longer give the run's plan")
            opts.output_device = opts.output_device or self.manifest.output_device.spec
            if opts.input_device is None and self.manifest.input_device:
                opts.input_device = self.manifest.input_device.spec
            opts.backend = opts.backend or self.manifest.backend
            settings = self.manifest.settings
            opts.retries = settings.retries if opts.retries is None else opts.retries
            opts.transcribe = opts.transcribe or settings.transcribe
            if opts.marker is None and settings.marker:
                opts.marker = parse_target(settings.marker)
            if opts.capture is None and settings.capture:
                opts.capture, opts.capture_device = settings.capture, opts.capture_device or settings.capture_device
            self._clock_steps = list(self.manifest.clock.steps)
            self._captures = list(self.manifest.captures)
        else:
            self.plan = load_plan(opts.scripts, opts.seed)
            self.run_id = new_run_id()
            self.run_dir = opts.runs_dir / self.run_id
        opts.backend = opts.backend or "sounddevice"
        if not opts.output_device:
            raise HarnessError("no output device: give --output-device")
        self.backend = open_backend(opts.backend)
        self.out_dev = resolve_device(opts.output_device, "output", opts.backend)
        self.in_dev = resolve_device(opts.input_device, "input", opts.backend) if opts.input_device else None

    def _new_manifest(self) -> Manifest:
        opts = self.options
        scripts_dir = private_dir(self.run_dir / "scripts")
        infos = []
        for n, script in enumerate(self.plan.scripts, start=1):
            copy = scripts_dir / f"{n:02d}-{script.source.name}"
            atomic_write_bytes(copy, script.source.read_bytes(), PRIVATE_FILE)
            if sha256_file(copy) != script.sha256:
                raise InputError(script.source, "the script changed while the run was starting")
            infos.append(
                ScriptInfo(path=str(copy.relative_to(self.run_dir)), source=str(script.source), sha256=script.sha256,
                           persona_id=script.persona.persona.id, seed=opts.seed)
            )  # fmt: skip
        now = time.time_ns()
        return Manifest(
            run_id=self.run_id, status="running", created_wall_ns=now, updated_wall_ns=now, host=host_info(),
            versions=versions(), scripts=infos, plan=self.plan.keys(), backend=opts.backend or "",
            **self._devices_info(), settings=self._settings(), clock=ClockInfo(status=clock_status()),
        )  # fmt: skip

    def _settings(self) -> Settings:
        opts = self.options
        return Settings(
            retries=opts.retries,
            marker=f"{opts.marker[0]}:{opts.marker[1]}" if opts.marker else None,
            transcribe=opts.transcribe,
            capture=opts.capture,
            capture_device=opts.capture_device,
            capture_tail_s=opts.capture_tail_s,
            device_wait_s=opts.device_wait_s,
        )

    def _devices_info(self) -> dict[str, DeviceInfo | None]:
        """The manifest's ``output_device`` and ``input_device``: the spec given and what it resolved to."""
        opts = self.options

        def info(spec: str | None, device: AudioDevice | None) -> DeviceInfo | None:
            if spec is None or device is None:
                return None
            return DeviceInfo(spec=spec, name=device.name, details=dataclasses.asdict(device))

        return {"output_device": info(opts.output_device, self.out_dev),
                "input_device": info(opts.input_device, self.in_dev)}  # fmt: skip

    def _write_manifest(self, status: str) -> None:
        self.manifest = self.manifest.model_copy(
            update={
                "status": status,
                "updated_wall_ns": time.time_ns(),
                "clock": ClockInfo(status=self.manifest.clock.status, steps=self._clock_steps),
                "captures": self._captures,
            }
        )
        write_manifest(self.run_dir, self.manifest)

    # ----- the run ----------------------------------------------------------------------------

    def execute(self) -> int:
        """Run (or resume) to the end; returns the exit status (0 done, 130 interrupted)."""
        private_dir(self.run_dir)
        self.answers_dir = private_dir(self.run_dir / "answers")
        self.speech_dir = private_dir(self.run_dir / "speech")
        completed = self._begin()
        if self.options.marker:
            self._marker = MarkerSender(*self.options.marker)
        if self.options.transcribe:
            from harness.bench.transcribe import Transcriber

            self._transcriber = Transcriber()
        capture = None
        try:
            with _signals(self._on_signal), RunView(self.console, len(self.plan.items), len(completed)) as view:
                self.view = view
                capture = self._start_capture()
                self._calibrate()
                for item in self.plan.items:
                    if item.index in completed:
                        continue
                    self._item(item)
                    view.advance()
                    if item.index + 1 < len(self.plan.items):
                        self._gap(self.plan.persona(item).session.gap_s)
                self._stop_capture(capture)
                capture = None
                self._clock_sample()
                self.log.emit("run_finished", items_completed=len(self.plan.items), **self._counts)
                self._write_manifest("finished")
                view.status("finished")
            self.console.print(f"run finished: {self.run_dir}", markup=False, highlight=False)
            return 0
        except (_Stop, KeyboardInterrupt):
            if self._open is not None:
                self._cut(self._open, "interrupted")
            self._stop_capture(capture)
            return self._interrupted("signal", "interrupted", "interrupted", EXIT_INTERRUPTED)
        except HarnessError as exc:
            if not isinstance(exc, _DeviceGone):
                self.log.emit("error", kind=type(exc).__name__, message=str(exc), fatal=True)
            self._stop_capture(capture)
            reason, status = ("device_lost", "interrupted") if isinstance(exc, _DeviceGone) else ("error", "failed")
            self._interrupted(reason, str(exc), status, 1)
            raise HarnessError(f"{exc}; the run is resumable: harness run --resume {self.run_dir}") from None
        finally:
            if self._marker:
                self._marker.close()
            self.log.close()

    def _begin(self) -> frozenset[int]:
        """Open the log and log the start or the resume; returns the plan items already done."""
        opts = self.options
        if opts.resume:
            logged = read_events(self.run_dir / EVENTS_NAME)
            state = run_state(logged.events, len(self.plan.items))
            if state.finished:
                raise HarnessError(f"{self.run_dir}: this run has already finished")
            self._counts = {"answers": state.answers, "no_answers": state.no_answers}
            if state.last_answer is not None:
                samples, _ = read_wav(self.run_dir / state.last_answer.path)
                self._last_answer = (_answer_from_log(state.last_answer, samples), state.last_answer)
        else:
            self.manifest = self._new_manifest()
        self.log = EventLog(self.run_dir / EVENTS_NAME, self.run_id)
        segment = Segment(started_wall_ns=time.time_ns(), first_seq=self.log.next_seq, argv=list(sys.argv))
        self.manifest = self.manifest.model_copy(
            update={
                "segments": [*self.manifest.segments, segment],
                "backend": opts.backend,
                **self._devices_info(),
                "settings": self._settings(),
                "clock": ClockInfo(status=clock_status(), steps=self._clock_steps),
            }
        )
        self._write_manifest("running")
        devices = {"backend": opts.backend, "output_device": self.out_dev.name,
                   "input_device": _device_name(self.in_dev)}  # fmt: skip
        if opts.resume:
            for started in state.open_utterances:
                self._cut(started, "crash")
            self.log.emit("run_resumed", next_index=state.next_index, completed_items=len(state.completed),
                          torn_lines=logged.torn_lines, **devices)  # fmt: skip
            completed = state.completed
        else:
            self.log.emit(
                "run_started", harness_version=__version__,
                personas=[s.persona.persona.id for s in self.plan.scripts], plan_items=len(self.plan.items),
                seeds={s.persona.persona.id: opts.seed for s in self.plan.scripts}, marker=self._settings().marker,
                **devices,
            )  # fmt: skip
            completed = frozenset()
        self._clock_sample()
        return completed

    def _interrupted(self, reason: str, message: str, status: str, exit_status: int) -> int:
        state = run_state(read_events(self.run_dir / EVENTS_NAME).events, len(self.plan.items))
        self.log.emit("run_interrupted", reason=reason, next_index=state.next_index, message=message)
        self._write_manifest(status)
        self.console.print(
            f"run stopped ({message}); continue it with: harness run --resume {self.run_dir}",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
        return exit_status

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()
        self.console.print("stopping after the current utterance (Ctrl-C again to stop at once)",
                           markup=False, highlight=False)  # fmt: skip

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stop

    def _gap(self, seconds: float) -> None:
        self.view.status(f"gap {seconds:g} s")
        if self._stop.wait(seconds):
            raise _Stop

    # ----- one plan item ----------------------------------------------------------------------

    def _item(self, item: PlanItem) -> None:
        self._check_stop()
        if self._clock_last is None or time.monotonic_ns() - self._clock_last.mono_ns > CLOCK_SAMPLE_EVERY_S * 1e9:
            self._clock_sample()
        persona = self.plan.persona(item)
        self.view.item(item, persona.persona.name)
        answers = no_answers = 0
        for turn, text in enumerate([item.text, *item.follow_ups]):
            if turn:
                self._check_stop()
            heard = self._turn(item, persona, turn, text)
            answers += heard
            no_answers += not heard and self.in_dev is not None
        self.log.emit(
            "item_completed", plan_index=item.index, persona_id=item.persona_id, utterance_id=item.utterance_id,
            answers=answers, no_answers=no_answers,
        )  # fmt: skip

    def _turn(self, item: PlanItem, persona: Persona, turn: int, text: str) -> bool:
        """Speak one turn until it is answered or the retries run out; True when answered."""
        retries = persona.session.retries if self.options.retries is None else self.options.retries
        attempt = 1
        while True:
            ref = {"plan_index": item.index, "persona_id": item.persona_id, "skill_id": item.skill_id,
                   "utterance_id": item.utterance_id, "turn": turn, "attempt": attempt}  # fmt: skip
            try:
                started = self._speak(item, persona, text, ref)
                answer = self._listen(persona) if self.in_dev is not None else None
            except _Lost as lost:
                self._recover(lost, item.index)
                continue
            self._lost_since = None
            if answer is None:
                return False
            if answer.outcome == "no_answer":
                final = attempt > retries
                self._counts["no_answers"] += final
                self.log.emit(
                    "no_answer", **ref, started_seq=started.seq, listen_started_wall_ns=answer.started_wall_ns,
                    waited_s=len(answer.samples) / answer.rate, final=final,
                )  # fmt: skip
                self.view.answer(f"no answer (try {attempt})")
                if final:
                    return False
                self._check_stop()
                attempt += 1
                self.log.emit("retry", **{**ref, "attempt": attempt})
                continue
            self._answered(item, persona, ref, started, answer)
            return True

    def _speak(self, item: PlanItem, persona: Persona, text: str, ref: dict[str, Any]) -> UtteranceStarted:
        synthesis, samples, rate, rel = self._synth(text, persona)
        self.view.status(f"speaking (turn {ref['turn']}, try {ref['attempt']})")
        started = self.log.emit(
            "utterance_started", **ref, skill_name=item.skill_name, text=text, audio_path=rel,
            audio_sha256=synthesis.sha256, duration_s=synthesis.duration_s, cache_hit=synthesis.cache_hit,
            device=self.out_dev.name,
        )  # fmt: skip
        assert isinstance(started, UtteranceStarted)
        self._open = started
        sent: list[tuple[Marker, bytes]] = []

        def on_onset(onset_wall_ns: int) -> None:
            if self._marker is not None:
                sent.append(self._marker.send(self.run_id, started.seq, onset_wall_ns, item.index,
                                              ref["attempt"], ref["turn"]))  # fmt: skip

        try:
            timing = self._play(samples, rate, on_onset)
        finally:
            self._log_markers(ref, started, sent)
        self.log.emit("utterance_ended", **ref, started_seq=started.seq, **_timing_fields(timing))
        self._open = None
        return started

    def _log_markers(self, ref: dict[str, Any], started: UtteranceStarted, sent: list[tuple[Marker, bytes]]) -> None:
        for marker, payload in sent:
            self.log.emit(
                "marker_sent", **ref, started_seq=started.seq, destination=self._marker.destination,
                onset_wall_ns=marker.onset_wall_ns, sent_wall_ns=marker.sent_wall_ns, payload_hex=payload.hex(),
            )  # fmt: skip

    def _answered(self, item: PlanItem, persona: Persona, ref: dict[str, Any], started: UtteranceStarted,
                  answer: Answer) -> None:  # fmt: skip
        same = self._last_answer is not None and same_answer(self._last_answer[0], answer)
        name = f"{item.index:05d}-t{ref['turn']}-a{ref['attempt']}-s{started.seq}.wav"
        path = write_wav(self.answers_dir / name, answer.samples, answer.rate, PRIVATE_FILE)
        transcript = self._transcriber.transcribe(answer.voice(), answer.rate) if self._transcriber else None
        too_long = answer.outcome == "too_long"
        heard = self.log.emit(
            "answer", **ref, started_seq=started.seq, onset_wall_ns=answer.onset_wall_ns,
            end_wall_ns=answer.end_wall_ns, duration_s=answer.duration_s,
            listen_started_wall_ns=answer.started_wall_ns, onset_index=answer.onset_index,
            end_index=answer.end_index, too_long=too_long, same_as_previous=same,
            path=str(path.relative_to(self.run_dir)), sha256=sha256_file(path), sample_rate=answer.rate,
            transcript=transcript,
        )  # fmt: skip
        assert isinstance(heard, AnswerHeard)
        self._counts["answers"] += 1
        self._last_answer = (answer, heard)
        self.view.answer(f"answer {answer.duration_s:.1f} s" + (f": {transcript}" if transcript else ""))
        if too_long or same:
            self._say_stop(persona, ref, "too_long" if too_long else "repeated_answer")

    def _say_stop(self, persona: Persona, ref: dict[str, Any], reason: str) -> None:
        text = persona.session.stop_phrase
        synthesis, samples, rate, rel = self._synth(text, persona)
        self.view.status(f"saying the stop phrase ({reason})")
        while True:
            try:
                timing = self._play(samples, rate, None)
                break
            except _Lost as lost:
                self._recover(lost, ref["plan_index"])
        self.log.emit(
            "stop_spoken", **ref, reason=reason, text=text, audio_path=rel, audio_sha256=synthesis.sha256,
            **_timing_fields(timing),
        )  # fmt: skip

    # ----- devices ----------------------------------------------------------------------------

    def _synth(self, text: str, persona: Persona) -> tuple[Synthesis, Any, int, str]:
        key = f"{persona.speech.model_dump_json()}\0{text}"
        if key not in self._speech:
            synthesis = synthesize(text, persona.speech, self.options.speech_cache)
            copy = self.speech_dir / f"{synthesis.sha256}.wav"
            if not copy.exists():
                atomic_write_bytes(copy, synthesis.path.read_bytes(), PRIVATE_FILE)
            samples, rate = read_wav(copy)
            self._speech[key] = (synthesis, samples, rate, str(copy.relative_to(self.run_dir)))
        return self._speech[key]

    def _play(self, samples: Any, rate: int, on_onset: Any) -> PlaybackTiming:
        try:
            return self.backend.play(samples, rate, self.out_dev, on_onset=on_onset)
        except DeviceError as exc:
            raise _Lost("output", self.out_dev.name, exc) from None

    def _listen(self, persona: Persona) -> Answer:
        self.view.status("listening")
        try:
            return listen(self.backend, self.in_dev, LISTEN_RATE, persona.session, self._noise)
        except DeviceError as exc:
            raise _Lost("input", self.in_dev.name, exc) from None

    def _calibrate(self) -> None:
        self._noise = None
        if self.in_dev is None:
            return
        seconds = self.options.calibration_s
        self.view.status("measuring the room's noise")
        while True:
            try:
                self._noise = calibrate_noise(self.backend, self.in_dev, seconds, LISTEN_RATE)
                break
            except DeviceError as exc:
                self._recover(_Lost("input", self.in_dev.name, exc), None)
        self.log.emit("calibration", device=self.in_dev.name, seconds=seconds, noise=dataclasses.asdict(self._noise))

    def _recover(self, lost: _Lost, plan_index: int | None) -> None:
        """Log the loss, wait for the device with back-off; raise _DeviceGone when it stays away.

        The wait is counted from the first of consecutive losses (reset by a successful turn), so a
        device that reappears in the listing but fails on use cannot keep the run waiting for ever.
        """
        if self._open is not None:
            self._cut(self._open, "device_lost", getattr(lost.error, "timing", None))
        self.log.emit("device_lost", kind=lost.kind, device=lost.device, message=str(lost.error),
                      plan_index=plan_index)  # fmt: skip
        self.view.note(f"{lost.kind} device {lost.device} lost ({lost.error}); waiting up to "
                       f"{self.options.device_wait_s:g} s for it")  # fmt: skip
        self.view.status(f"waiting for the {lost.kind} device")
        began = time.monotonic()
        if self._lost_since is None:
            self._lost_since = began
        delay, attempts = 0.25, 0
        while True:
            waited = time.monotonic() - self._lost_since
            if waited >= self.options.device_wait_s:
                raise _DeviceGone(f"{lost.kind} device {lost.device} lost and not back after {waited:.0f} s")
            if self._stop.wait(min(delay, self.options.device_wait_s - waited)):
                raise _Stop
            attempts += 1
            if self._devices_back():
                break
            delay = min(delay * 2, 5.0)
        self.log.emit("device_restored", kind=lost.kind, device=lost.device, waited_s=time.monotonic() - began,
                      attempts=attempts)  # fmt: skip
        self.view.note(f"{lost.kind} device {lost.device} is back")

    def _devices_back(self) -> bool:
        """Re-scan PortAudio and open (without starting) a stream on each device of the run."""
        name = self.options.backend or "sounddevice"
        try:
            self.backend.reset()
            self.out_dev = resolve_device(self.options.output_device or "", "output", name)
            self.backend.open_output(self.out_dev, int(self.out_dev.default_samplerate), _silence, 0.1).close()
            if self.options.input_device:
                self.in_dev = resolve_device(self.options.input_device, "input", name)
                self.backend.open_input(self.in_dev, int(self.in_dev.default_samplerate), _ignore, 0.1).close()
        except DeviceError:
            return False
        return True

    def _cut(self, started: UtteranceStarted, reason: str, timing: PlaybackTiming | None = None) -> None:
        fields = started.model_dump(include={"plan_index", "persona_id", "skill_id", "utterance_id", "turn", "attempt"})
        self.log.emit(
            "utterance_cut", **fields, started_seq=started.seq, reason=reason,
            onset_wall_ns=timing.onset_wall_ns if timing else None, frames_played=timing.frames if timing else None,
        )  # fmt: skip
        self._open = None

    # ----- clock and capture ------------------------------------------------------------------

    def _clock_sample(self) -> None:
        pair = clock_pair()
        step = step_between(self._clock_last, pair) if self._clock_last else None
        if step is not None:
            self._clock_steps.append(ClockStep(at_wall_ns=pair.wall_ns, step_ns=step))
        self._clock_last = pair
        self.log.emit("clock_sample", offset_ns=pair.offset_ns, step_ns=step)

    def _start_capture(self) -> Any:
        opts = self.options
        if not opts.capture:
            return None
        from harness.capture import start_capture

        handle = start_capture(opts.capture, private_dir(self.run_dir / "capture"), device=opts.capture_device)
        self.log.emit("capture_started", spec=opts.capture, device=opts.capture_device)
        return handle

    def _stop_capture(self, handle: Any) -> None:
        if handle is None:
            return
        files = [
            CaptureFileInfo(
                path=os.path.relpath(f.path, self.run_dir), sha256=f.sha256, bytes=f.bytes, interface=f.interface,
                started_ns=f.started_ns, stopped_ns=f.stopped_ns,
            )
            for f in handle.stop(self.options.capture_tail_s)
        ]  # fmt: skip
        self._captures.extend(files)
        self.log.emit("capture_stopped", files=[f.model_dump() for f in files])


@contextmanager
def _signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler`` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _timing_fields(timing: PlaybackTiming) -> dict[str, Any]:
    return {
        "onset_wall_ns": timing.onset_wall_ns, "end_wall_ns": timing.end_wall_ns,
        "onset_mono_ns": timing.onset_mono_ns, "end_mono_ns": timing.end_mono_ns,
        "latency_s": timing.latency_s, "device": timing.device.name, "sample_rate": timing.sample_rate,
        "frames": timing.frames, "backend": timing.backend,
    }  # fmt: skip


def _silence(frames: int, dac: float, now: float, flagged: bool) -> tuple[np.ndarray, bool]:
    return np.zeros(frames, dtype=np.float32), True


def _ignore(block: np.ndarray, adc: float, now: float, flagged: bool) -> None:
    return None


def _device_name(device: AudioDevice | None) -> str | None:
    return device.name if device is not None else None


def _answer_from_log(event: AnswerHeard, samples: np.ndarray) -> Answer:
    """The logged answer as :func:`same_answer` needs it, from its WAV (the whole recording)."""
    return Answer(
        outcome="too_long" if event.too_long else "answer", onset_wall_ns=event.onset_wall_ns,
        end_wall_ns=event.end_wall_ns, duration_s=event.duration_s, samples=samples, rate=event.sample_rate,
        started_wall_ns=event.listen_started_wall_ns, onset_index=event.onset_index, end_index=event.end_index,
    )  # fmt: skip
