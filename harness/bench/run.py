"""The bench run: speak the plan, listen for each answer, log every instant, survive faults.

One plan item is: the utterance (retried while no answer comes, up to the retries), the stop
phrase when the answer ran too long or repeated the previous one, then the follow-ups (skipped
once a turn got no answer), then the gap. With answer checks, each answer is transcribed and
checked against its expect by a background worker (:mod:`harness.bench.checker`). Every step
is an event in ``events.jsonl`` (see :mod:`harness.rundir.events`). The run record
(:mod:`harness.bench.record`) owns the run directory; the device guard (:mod:`harness.bench.guard`)
owns the devices; this module is the turn loop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from harness import __version__
from harness.audio import Answer, same_answer
from harness.audio.backend import PlaybackTiming
from harness.bench.guard import DeviceGone, DeviceGuard, DeviceLoss, Stop, played_fields
from harness.bench.markers import Marker, MarkerSender
from harness.bench.options import RunOptions
from harness.bench.record import RunRecord, settings_of
from harness.bench.view import RunView
from harness.errors import HarnessError, OutputError
from harness.files import PRIVATE_FILE, atomic_write_bytes, sha256_file
from harness.rundir.events import (
    AnswerHeard,
    CaptureFileInfo,
    CaptureStarted,
    CaptureStopped,
    ErrorEvent,
    ItemCompleted,
    MarkerSent,
    NoAnswer,
    Retry,
    RunFinished,
    RunInterrupted,
    RunResumed,
    RunStarted,
    StopSpoken,
    TrySuperseded,
    TurnRef,
    TurnSkipped,
    UtteranceCut,
    UtteranceEnded,
    UtteranceStarted,
    read_events,
)
from harness.rundir.layout import RunDir
from harness.script import Persona, PlanItem
from harness.script.duration import item_duration
from harness.speech import Synthesis, synthesize
from harness.wav import read_wav, write_wav

if TYPE_CHECKING:
    from harness.bench.checker import AnswerChecker

EXIT_INTERRUPTED = 130


class BenchRun:
    """One process's share of a run: a fresh start or a resume of a run directory.

    :meth:`prepare` loads the plan and resolves the devices (nothing is written); :meth:`execute`
    runs to the end and returns the exit status.
    """

    def __init__(self, options: RunOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self._stop = threading.Event()
        self._open: UtteranceStarted | None = None
        self._last_answer: tuple[Answer, AnswerHeard] | None = None
        self._speech: dict[str, tuple[Synthesis, np.ndarray, int, str]] = {}
        self._counts = {"answers": 0, "no_answers": 0}
        self._checker: AnswerChecker | None = None
        self._next_attempt: dict[tuple[int, int], int] = {}  # on a resume: turns whose tries continue
        self._marker: MarkerSender | None = None
        self._record: RunRecord | None = None
        self._guard: DeviceGuard | None = None
        self._view: RunView | None = None
        self._completed: frozenset[int] | None = None  # plan items done before this segment, once started
        self.finished_before = False  # a resume found the run finished (only its captures were recovered)

    @property
    def record(self) -> RunRecord:
        assert self._record is not None, "prepare() first"
        return self._record

    @property
    def guard(self) -> DeviceGuard:
        assert self._guard is not None, "prepare() first"
        return self._guard

    @property
    def view(self) -> RunView:
        assert self._view is not None, "execute() first"
        return self._view

    @property
    def run_dir(self) -> RunDir:
        return self.record.run

    def prepare(self) -> None:
        """Load the plan and resolve the devices (nothing is written yet)."""
        opts = self.options
        if opts.resume:
            self._record = RunRecord.reopen(opts.resume)
            self.options = opts = opts.resumed(self._record.run, self._record.manifest)
        else:
            self._record = RunRecord.new(opts.scripts, opts.seed, opts.runs_dir)
        self._guard = DeviceGuard(opts, self._stop)

    # ----- the run ----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the run's log and record this start or resume (the manifest says ``running`` from
        here). :meth:`execute` does it when not done yet; call it first to record what runs beside
        the bench (a capture) before the first utterance."""
        if self._completed is None:
            self._completed = self._begin()

    def abandon(self, message: str) -> None:
        """Mark a started run interrupted (resumable) when what surrounds it failed before
        :meth:`execute` ran (the twin did not start, Ctrl-C during its start)."""
        if self._completed is not None and self.record.manifest.status == "running":
            self._interrupted("error", message, "interrupted", 1)

    def execute(self) -> int:
        """Run (or resume) to the end; returns the exit status (0 done, 130 interrupted)."""
        self.start()
        if self.finished_before:
            self.record.close()
            return 0
        record, plan, completed = self.record, self.record.plan, self._completed
        assert completed is not None
        if self.options.marker:
            self._marker = MarkerSender(*self.options.marker)
        capture = None
        try:
            left = self._estimates(completed)
            with _signals(self._on_signal), RunView(self.console, len(plan.items), len(completed), left) as view:
                self._view = view
                self._start_checker()
                capture = self._start_capture()
                self.guard.calibrate(record, view)
                for item in plan.items:
                    if item.index in completed:
                        continue
                    self._item(item)
                    if capture is not None:
                        capture.list_rotated(record)
                    view.advance(item.index)
                    if item.index + 1 < len(plan.items):
                        self._gap(plan.persona(item).session.gap_s)
                self._stop_capture(capture)
                capture = None
                self._close_checker(wait=True)
                record.clock_sample()
                record.emit(RunFinished(items_completed=len(plan.items), **self._counts))
                record.write_manifest("finished")
                view.status("finished")
            self._print_checks()
            self.console.print(f"run finished: {record.run.root}", markup=False, highlight=False)
            return 0
        except Stop:
            if self._open is not None:
                self._cut(self._open, "interrupted")
            self._stop_capture(capture)
            self._close_checker(wait=True)  # a graceful stop: the answers heard so far are checked
            return self._interrupted("signal", "interrupted", "interrupted", EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            if self._open is not None:
                self._cut(self._open, "interrupted")
            self._close_checker(wait=False)  # stop at once: what is left is checked on resume or by correlate
            self._stop_capture(capture)
            return self._interrupted("signal", "interrupted", "interrupted", EXIT_INTERRUPTED)
        except OutputError as exc:
            # the disk is full or unwritable: what is logged stays the resume point; the reserve makes room to say why
            record.release_reserve()
            with suppress(OutputError):
                self._stop_capture(capture)
                self._interrupted("output", str(exc), "interrupted", 1)
            raise HarnessError(
                f"{exc}; nothing recorded is lost: free space, then harness run --resume {record.run.root}"
            ) from None
        except HarnessError as exc:
            if not isinstance(exc, DeviceGone):
                record.emit(ErrorEvent(kind=type(exc).__name__, message=str(exc), fatal=True))
            self._stop_capture(capture)
            reason, status = ("device_lost", "interrupted") if isinstance(exc, DeviceGone) else ("error", "failed")
            self._interrupted(reason, str(exc), status, 1)
            raise HarnessError(f"{exc}; the run is resumable: harness run --resume {record.run.root}") from None
        finally:
            self._close_checker(wait=False)
            if self._marker:
                self._marker.close()
            record.close()

    def _estimates(self, completed: frozenset[int]) -> dict[int, float]:
        """The plan's duration estimate of each item still to do (its texts synthesised now, so
        every WAV is ready before the first utterance)."""
        plan = self.record.plan
        todo = [item for item in plan.items if item.index not in completed]
        listening = self.guard.input is not None

        def spoken_s(persona: Persona, text: str) -> float:
            return self._synth(text, persona)[0].duration_s

        return {
            item.index: item_duration(item, plan.persona(item), spoken_s, listening, item is todo[-1]).estimate_s
            for item in todo
        }

    def _begin(self) -> frozenset[int]:
        """Open the log and log the start or the resume; returns the plan items already done."""
        opts, record, guard = self.options, self.record, self.guard
        state = record.begin(opts, guard.output, guard.input)
        backend = guard.backend_name
        devices = {
            "backend": backend,
            "output_device": guard.output.name,
            "input_device": guard.input.name if guard.input else None,
        }
        if state is not None:
            if state.finished:
                if not record.recovered:
                    raise HarnessError(f"{record.run.root}: this run has already finished")
                self.finished_before = True  # killed while its capture was closing: only that was left to do
                self.console.print(
                    f"this run had finished; {len(record.recovered)} capture files it left open are "
                    f"now listed: {record.run.root}",
                    markup=False,
                    highlight=False,
                )
                return frozenset(item.index for item in record.plan.items)
            self._counts = {"answers": state.answers, "no_answers": state.no_answers}
            if state.last_answer is not None:
                samples, _ = read_wav(record.run.resolve(state.last_answer.path))
                self._last_answer = (_answer_from_log(state.last_answer, samples), state.last_answer)
            for started in state.open_utterances:
                self._cut(started, "crash")
            for started in state.superseded:
                record.emit(TrySuperseded(**started.ref().fields(), started_seq=started.seq))
            self._next_attempt = dict(state.next_attempt or {})
            record.emit(
                RunResumed(
                    next_index=state.next_index,
                    completed_items=len(state.completed),
                    torn_lines=record.torn_lines,
                    **devices,
                )
            )
            completed = state.completed
        else:
            personas = [s.persona.persona.id for s in record.plan.scripts]
            record.emit(
                RunStarted(
                    harness_version=__version__,
                    personas=personas,
                    plan_items=len(record.plan.items),
                    seeds={p: opts.seed for p in personas},
                    marker=settings_of(opts).marker,
                    **devices,
                )
            )
            completed = frozenset()
        record.clock_sample()
        return completed

    def _interrupted(self, reason: str, message: str, status: str, exit_status: int) -> int:
        record = self.record
        record.emit(RunInterrupted(reason=reason, next_index=record.state().next_index, message=message))
        record.write_manifest(status)
        self.console.print(
            f"run stopped ({message}); continue it with: harness run --resume {record.run.root}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return exit_status

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        self._stop.set()
        self.console.print(
            "stopping after the current utterance (Ctrl-C again to stop at once)", markup=False, highlight=False
        )

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Stop

    def _gap(self, seconds: float) -> None:
        self.view.status(f"gap {seconds:g} s")
        if self._stop.wait(seconds):
            raise Stop

    # ----- one plan item ----------------------------------------------------------------------

    def _item(self, item: PlanItem) -> None:
        self._check_stop()
        self.record.clock_sample_due()
        persona = self.record.plan.persona(item)
        self.view.item(item, persona.persona.name)
        answers = no_answers = 0
        unanswered: int | None = None  # the turn that got no answer: the session is over
        for turn, text in enumerate([item.text, *item.follow_ups]):
            if unanswered is not None:
                self._skip(item, turn, text, unanswered)
                continue
            if turn:
                self._check_stop()
                self.view.turn(f"follow-up {turn} of utterance {item.utterance_id}: {text}")
            heard = self._turn(item, persona, turn, text)
            answers += heard
            if not heard and self.guard.input is not None:
                no_answers += 1
                unanswered = turn
        self.record.emit(
            ItemCompleted(
                plan_index=item.index,
                persona_id=item.persona_id,
                utterance_id=item.utterance_id,
                answers=answers,
                no_answers=no_answers,
            )
        )

    def _skip(self, item: PlanItem, turn: int, text: str, unanswered: int) -> None:
        self.record.emit(TurnSkipped(**_ref(item, turn, 1).fields(), after_turn=unanswered, text=text))
        self.view.turn(
            f"follow-up {turn} of utterance {item.utterance_id} skipped (turn {unanswered} got no answer): {text}"
        )

    def _turn(self, item: PlanItem, persona: Persona, turn: int, text: str) -> bool:
        """Speak one turn until it is answered or the retries run out; True when answered."""
        retries = persona.session.retries if self.options.retries is None else self.options.retries
        first = self._next_attempt.pop((item.index, turn), 1)  # after a resume, tries go on numbering
        ref = _ref(item, turn, first)
        while True:
            try:
                started = self._speak(item, persona, text, ref)
                answer = self.guard.listen(persona.session) if self.guard.input is not None else None
            except DeviceLoss as lost:
                self._lost(lost, item.index)
                continue
            self.guard.settled()
            if answer is None:
                return False
            if answer.outcome == "no_answer":
                final = ref.attempt - first >= retries
                self._counts["no_answers"] += final
                self.record.emit(
                    NoAnswer(
                        **ref.fields(),
                        started_seq=started.seq,
                        listen_started_wall_ns=answer.started_wall_ns,
                        waited_s=len(answer.samples) / answer.rate,
                        final=final,
                    )
                )
                tries = f"try {ref.attempt - first + 1}/{retries + 1}"
                self.view.answer(f"no answer after {len(answer.samples) / answer.rate:.1f} s ({tries})")
                if final:
                    return False
                self._check_stop()
                ref = ref.retried()
                self.record.emit(Retry(**ref.fields()))
                self.view.turn(f"retry {ref.attempt - first + 1}/{retries + 1}: {text}")
                continue
            self._answered(persona, ref, started, answer)
            return True

    def _speak(self, item: PlanItem, persona: Persona, text: str, ref: TurnRef) -> UtteranceStarted:
        synthesis, samples, rate, rel = self._synth(text, persona)
        self.view.status(f"speaking (turn {ref.turn}, try {ref.attempt})")
        started = self.record.emit(
            UtteranceStarted(
                **ref.fields(),
                skill_name=item.skill_name,
                text=text,
                audio_path=rel,
                audio_sha256=synthesis.sha256,
                duration_s=synthesis.duration_s,
                cache_hit=synthesis.cache_hit,
                device=self.guard.output.name,
            )
        )
        self._open = started
        sent: list[tuple[Marker, bytes]] = []

        def on_onset(onset_wall_ns: int) -> None:
            if self._marker is not None:
                sent.append(
                    self._marker.send(self.record.run_id, started.seq, onset_wall_ns, item.index, ref.attempt, ref.turn)
                )

        try:
            timing = self.guard.play(samples, rate, on_onset)
        finally:
            self._log_markers(ref, started, sent)
        self.record.emit(UtteranceEnded(**ref.fields(), started_seq=started.seq, **played_fields(timing)))
        self._open = None
        return started

    def _log_markers(self, ref: TurnRef, started: UtteranceStarted, sent: list[tuple[Marker, bytes]]) -> None:
        assert self._marker is not None or not sent
        for marker, payload in sent:
            self.record.emit(
                MarkerSent(
                    **ref.fields(),
                    started_seq=started.seq,
                    destination=self._marker.destination,
                    onset_wall_ns=marker.onset_wall_ns,
                    sent_wall_ns=marker.sent_wall_ns,
                    payload_hex=payload.hex(),
                )
            )

    def _answered(self, persona: Persona, ref: TurnRef, started: UtteranceStarted, answer: Answer) -> None:
        same = self._last_answer is not None and same_answer(self._last_answer[0], answer)
        run = self.record.run
        path = write_wav(
            run.answer_wav(ref.plan_index, ref.turn, ref.attempt, started.seq),
            answer.samples,
            answer.rate,
            PRIVATE_FILE,
        )
        too_long = answer.outcome == "too_long"
        heard = self.record.emit(
            AnswerHeard(
                **ref.fields(),
                started_seq=started.seq,
                onset_wall_ns=answer.onset_wall_ns,
                end_wall_ns=answer.end_wall_ns,
                duration_s=answer.duration_s,
                listen_started_wall_ns=answer.started_wall_ns,
                onset_index=answer.onset_index,
                end_index=answer.end_index,
                too_long=too_long,
                same_as_previous=same,
                path=run.relative(path),
                sha256=sha256_file(path),
                sample_rate=answer.rate,
            )
        )
        self._counts["answers"] += 1
        self._last_answer = (answer, heard)
        if self._checker is not None:
            self._checker.submit(heard, answer.voice(), answer.rate)
        label = " (cut at the listen limit)" if too_long else " (same as the previous answer)" if same else ""
        self.view.answer(f"answer {answer.duration_s:.1f} s{label}")
        if too_long or same:
            self._say_stop(persona, ref, "too_long" if too_long else "repeated_answer")

    def _say_stop(self, persona: Persona, ref: TurnRef, reason: str) -> None:
        text = persona.session.stop_phrase
        synthesis, samples, rate, rel = self._synth(text, persona)
        self.view.status(f"saying the stop phrase ({reason})")
        while True:
            try:
                timing = self.guard.play(samples, rate, None)
                break
            except DeviceLoss as lost:
                self._lost(lost, ref.plan_index)
        self.record.emit(
            StopSpoken(
                **ref.fields(),
                reason=reason,
                text=text,
                audio_path=rel,
                audio_sha256=synthesis.sha256,
                **played_fields(timing),
            )
        )

    def _lost(self, lost: DeviceLoss, plan_index: int) -> None:
        """A device failed mid-turn: cut the utterance under way, then wait for the device."""
        if self._open is not None:
            self._cut(self._open, "device_lost", getattr(lost.error, "timing", None))
        self.guard.recover(lost, plan_index, self.record, self.view)

    def _synth(self, text: str, persona: Persona) -> tuple[Synthesis, np.ndarray, int, str]:
        """The WAV of ``text`` in the persona's voice, copied into the run (once per text)."""
        key = f"{persona.speech.model_dump_json()}\0{text}"
        if key not in self._speech:
            run = self.record.run
            synthesis = synthesize(text, persona.speech, self.options.speech_cache)
            copy = run.speech_copy(synthesis.sha256)
            if not copy.exists():
                atomic_write_bytes(copy, synthesis.path.read_bytes(), PRIVATE_FILE)
            samples, rate = read_wav(copy)
            self._speech[key] = (synthesis, samples, rate, run.relative(copy))
        return self._speech[key]

    def _cut(self, started: UtteranceStarted, reason: str, timing: PlaybackTiming | None = None) -> None:
        self.record.emit(
            UtteranceCut(
                **started.ref().fields(),
                started_seq=started.seq,
                reason=reason,
                onset_wall_ns=timing.onset_wall_ns if timing else None,
                frames_played=timing.frames if timing else None,
            )
        )
        self._open = None

    # ----- answer checks ----------------------------------------------------------------------

    def _start_checker(self) -> None:
        """With answer checks on, start the worker and queue the answers a killed run left unchecked."""
        if not self.options.transcribe:
            return
        from harness.bench.checker import AnswerChecker  # loads the recogniser's stack only when asked
        from harness.bench.checks import unchecked_answers

        record = self.record
        self._checker = AnswerChecker(record.plan, record.emit, self.view.checked)
        if record.resuming:
            for heard in unchecked_answers(read_events(record.run.events).events):
                try:
                    samples, rate = read_wav(record.run.resolve(heard.path))
                except (HarnessError, OSError):
                    continue  # correlate reports it
                self._checker.submit(heard, samples[heard.onset_index : heard.end_index + 1], rate)

    def _close_checker(self, wait: bool) -> None:
        checker, self._checker = self._checker, None
        if checker is None:
            return
        if wait and checker.pending():
            self.view.status(f"checking the last {checker.pending()} answers")
        checker.close(wait)
        if checker.error is not None:
            self.view.note(f"answer checks failed: {checker.error}; `harness correlate` checks what is left")

    def _print_checks(self) -> None:
        """The run's answer checks in one line (all segments): how many utterances reached their skill."""
        from harness.bench.checks import answer_counts, counts_line, try_results

        record = self.record
        if not self.options.transcribe:
            if any(item.expect for item in record.plan.items):
                self.view.note("answers not checked (no --transcribe): `harness correlate` checks them")
            return
        events = read_events(record.run.events).events
        counts = answer_counts(try_results(events, record.plan).values(), events)
        self.view.note(counts_line(counts))

    # ----- capture ----------------------------------------------------------------------------

    def _start_capture(self) -> _Capture | None:
        """Start the run's capture and list its files in the manifest at once."""
        opts = self.options
        if not opts.capture:
            return None
        from harness.capture import start_capture

        record = self.record
        record.run.create(record.run.capture)
        handle = start_capture(
            opts.capture,
            record.run.capture,
            device=opts.capture_device,
            bpf=opts.capture_filter,
            rotate_mb=opts.capture_rotate_mb,
            rotate_s=opts.capture_rotate_s,
        )
        capture = _Capture(handle, record.capture_opened(handle.paths(), handle.spec.interface, handle.started_ns))
        record.emit(
            CaptureStarted(spec=opts.capture, device=opts.capture_device, files=[o.path for o in capture.opened])
        )
        return capture

    def _stop_capture(self, capture: _Capture | None) -> None:
        if capture is None:
            return
        record = self.record
        files = [record.capture_file(f) for f in capture.handle.stop(self.options.tail_s)]
        record.capture_closed(capture.opened, files)
        record.emit(CaptureStopped(files=files))


@dataclass
class _Capture:
    """The run's running capture and its files listed so far."""

    handle: Any
    opened: list[CaptureFileInfo]

    def list_rotated(self, record: RunRecord) -> None:
        """List the files a rotating capture started since the last look."""
        known = {o.path for o in self.opened}
        new = [p for p in self.handle.paths() if record.run.relative(p) not in known]
        if new:
            self.opened += record.capture_opened(new, self.handle.spec.interface, self.handle.started_ns)


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


def _ref(item: PlanItem, turn: int, attempt: int) -> TurnRef:
    return TurnRef(
        plan_index=item.index,
        persona_id=item.persona_id,
        skill_id=item.skill_id,
        utterance_id=item.utterance_id,
        turn=turn,
        attempt=attempt,
    )


def _answer_from_log(event: AnswerHeard, samples: np.ndarray) -> Answer:
    """The logged answer as :func:`same_answer` needs it, from its WAV (the whole recording)."""
    return Answer(
        outcome="too_long" if event.too_long else "answer",
        onset_wall_ns=event.onset_wall_ns,
        end_wall_ns=event.end_wall_ns,
        duration_s=event.duration_s,
        samples=samples,
        rate=event.sample_rate,
        started_wall_ns=event.listen_started_wall_ns,
        onset_index=event.onset_index,
        end_index=event.end_index,
    )
