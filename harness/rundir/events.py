"""The run's timing log: one validated event per line of ``events.jsonl``, append-only.

Every event carries ``run_id``, ``seq`` (strictly increasing within a run, also across resumes),
``event`` (its kind), and ``t_wall_ns``/``t_mono_ns`` (when it was logged: UTC epoch ns and the
monotonic clock). Instants that matter (utterance onsets, answer onsets) are separate ``*_ns``
fields; ``t_wall_ns`` is only when the line was written. Paths are relative to the run directory.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from harness.errors import InputError, Place, first_problem
from harness.jsonl import JsonlLog, read_jsonl

SCHEMA_ID = "https://harness.invalid/schemas/events.json"

NonNegInt = Annotated[int, Field(ge=0)]


class _Event(BaseModel):
    """The fields every line has. A writer builds an event without them; :meth:`EventLog.emit`
    fills them in, and a reader gets them back (the schema marks them required)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)

    run_id: str = ""
    seq: NonNegInt = Field(0, description="position in the run's log; strictly increasing, also across resumes")
    t_wall_ns: int = Field(0, description="when the line was logged, UTC epoch nanoseconds")
    t_mono_ns: int = Field(0, description="when the line was logged, monotonic clock nanoseconds")


class TurnRef(BaseModel):
    """Which spoken turn of which plan item an event is about: the key of a spoken try."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)

    plan_index: NonNegInt = Field(description="0-based position of the plan item in the run")
    persona_id: str
    skill_id: str = Field(description='skill id, "builtin" for built-in requests')
    utterance_id: str = Field(description='stable id within the persona, e.g. "fitbit/2"')
    turn: NonNegInt = Field(0, description="0 = the utterance itself, k = its k-th follow-up")
    attempt: int = Field(1, ge=1, description="1-based try number (retries after no answer)")

    def fields(self) -> dict[str, Any]:
        """The reference as keyword arguments of an event model."""
        return {name: getattr(self, name) for name in TurnRef.model_fields}

    def retried(self) -> TurnRef:
        return self.model_copy(update={"attempt": self.attempt + 1})


class _Turn(_Event, TurnRef):
    """An event about one spoken turn."""

    def ref(self) -> TurnRef:
        return TurnRef(**{name: getattr(self, name) for name in TurnRef.model_fields})


class _Played(_Turn):
    """A turn's sound as it really left the output: first and last sample at the DAC."""

    onset_wall_ns: int
    end_wall_ns: int
    onset_mono_ns: int
    end_mono_ns: int
    latency_s: float = Field(description="output latency the stream reported")
    device: str
    sample_rate: int
    frames: NonNegInt
    backend: str


class RunStarted(_Event):
    event: Literal["run_started"] = "run_started"
    harness_version: str
    personas: list[str]
    plan_items: NonNegInt
    seeds: dict[str, int | None] = Field(description="plan seed per persona id")
    backend: str
    output_device: str
    input_device: str | None
    marker: str | None = Field(description="HOST:PORT sync markers go to, if any")


class RunResumed(_Event):
    event: Literal["run_resumed"] = "run_resumed"
    next_index: NonNegInt = Field(description="first plan item not yet completed")
    completed_items: NonNegInt
    torn_lines: NonNegInt = Field(description="lines of the log that were torn by a crash")
    backend: str
    output_device: str
    input_device: str | None


class ClockSample(_Event):
    event: Literal["clock_sample"] = "clock_sample"
    offset_ns: int = Field(description="t_wall_ns - t_mono_ns")
    step_ns: int | None = Field(
        description="offset change since the previous sample when it exceeds the step threshold"
    )


class Calibration(_Event):
    event: Literal["calibration"] = "calibration"
    device: str
    seconds: float
    noise: dict[str, Any] = Field(description="the measured noise floor and the voice threshold derived from it")


class UtteranceStarted(_Turn):
    event: Literal["utterance_started"] = "utterance_started"
    skill_name: str
    text: str
    audio_path: str
    audio_sha256: str
    duration_s: float
    cache_hit: bool
    device: str


class UtteranceEnded(_Played):
    event: Literal["utterance_ended"] = "utterance_ended"
    started_seq: NonNegInt = Field(description="seq of the matching utterance_started")


class UtteranceCut(_Turn):
    event: Literal["utterance_cut"] = "utterance_cut"
    started_seq: NonNegInt
    reason: Literal["crash", "device_lost", "interrupted"] = Field(
        description="crash: found unfinished on resume; device_lost: the device vanished mid-play; "
        "interrupted: a second Ctrl-C"
    )
    onset_wall_ns: int | None = Field(None, description="onset, when playback got far enough to know it")
    frames_played: NonNegInt | None = Field(None, description="frames handed to the device before the cut, when known")


class AnswerHeard(_Turn):
    event: Literal["answer"] = "answer"
    started_seq: NonNegInt
    onset_wall_ns: int
    end_wall_ns: int
    duration_s: float
    listen_started_wall_ns: int = Field(description="time of the recording's first sample")
    onset_index: NonNegInt = Field(description="sample of the recording where the answer starts")
    end_index: NonNegInt = Field(description="sample of the recording where the answer ends")
    too_long: bool = Field(description="the answer was still going at the longest allowed answer")
    same_as_previous: bool = Field(description="identical to the previous answer of the run")
    path: str = Field(description="WAV of the whole recording, from listen_started_wall_ns")
    sha256: str
    sample_rate: int
    transcript: str | None = Field(
        None, description="older logs only: a transcript taken before the next utterance (now in answer_checked)"
    )


ExpectResult = Literal["matched", "not_matched", "unchecked"]


class AnswerChecked(_Turn):
    """An answer transcribed offline and checked against its utterance's ``expect`` (logged by a
    worker after the answer, so it may follow later events of the run)."""

    event: Literal["answer_checked"] = "answer_checked"
    started_seq: NonNegInt = Field(description="seq of the answered try's utterance_started")
    answer_seq: NonNegInt = Field(description="seq of the answer event checked")
    result: ExpectResult = Field(
        description="matched: a keyword or the regex was found in the answer; not_matched: neither; "
        "unchecked: the utterance has no expect"
    )
    transcript: str = Field(description="the recogniser's transcript of the answer (lower case, may be empty)")
    matched_by: str = Field(description='what matched: "keyword:WORDS" or "regex:PATTERN"; empty when nothing did')
    keywords: list[str] = Field(description="the utterance's expect keywords")
    regex: str | None = Field(description="the utterance's expect regex")
    recogniser: str = Field(description='e.g. "pocketsphinx 5.1.1"')
    decode_s: float = Field(description="seconds the transcription took")


class TrySuperseded(_Turn):
    """A try that a later one replaces: on resume, every try of a plan item that was under way
    (the item is spoken again from its first turn, with new attempt numbers)."""

    event: Literal["try_superseded"] = "try_superseded"
    started_seq: NonNegInt = Field(description="seq of the superseded try's utterance_started")
    reason: Literal["resumed"] = "resumed"


class TurnSkipped(_Turn):
    """A follow-up not spoken: an earlier turn of its plan item got no answer, so the session it
    belongs to is over."""

    event: Literal["turn_skipped"] = "turn_skipped"
    reason: Literal["no_answer"] = "no_answer"
    after_turn: NonNegInt = Field(description="the turn that got no answer")
    text: str = Field(description="what would have been said")


class NoAnswer(_Turn):
    event: Literal["no_answer"] = "no_answer"
    started_seq: NonNegInt
    listen_started_wall_ns: int
    waited_s: float
    final: bool = Field(description="no retry follows")


class Retry(_Turn):
    event: Literal["retry"] = "retry"
    reason: Literal["no_answer"] = "no_answer"


class StopSpoken(_Played):
    event: Literal["stop_spoken"] = "stop_spoken"
    reason: Literal["too_long", "repeated_answer"]
    text: str
    audio_path: str
    audio_sha256: str


class MarkerSent(_Turn):
    event: Literal["marker_sent"] = "marker_sent"
    started_seq: NonNegInt
    destination: str
    onset_wall_ns: int = Field(description="the onset the marker carries")
    sent_wall_ns: int
    payload_hex: str


class ItemCompleted(_Event):
    event: Literal["item_completed"] = "item_completed"
    plan_index: NonNegInt
    persona_id: str
    utterance_id: str
    answers: NonNegInt
    no_answers: NonNegInt


class DeviceLost(_Event):
    event: Literal["device_lost"] = "device_lost"
    kind: Literal["output", "input"]
    device: str
    message: str
    plan_index: NonNegInt | None


class DeviceRestored(_Event):
    event: Literal["device_restored"] = "device_restored"
    kind: Literal["output", "input"]
    device: str
    waited_s: float
    attempts: int


class CaptureStarted(_Event):
    event: Literal["capture_started"] = "capture_started"
    spec: str
    device: str | None
    files: list[str] = Field(default_factory=list, description="its files so far, relative to the run directory")


class CaptureFileInfo(BaseModel):
    """One capture file of the run, listed from the moment its capture starts."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="relative to the run directory")
    state: Literal["writing", "closed", "recovered", "missing"] = Field(
        "closed",
        description="writing: its capture runs (or the run crashed since); closed: stopped normally; recovered: "
        "the run crashed while it was written and a resume hashed what was there; missing: listed while its "
        "capture ran but absent on resume (a remote capture never fetched, a synthetic one never written)",
    )
    sha256: str | None = Field(None, description="of the whole file once it is closed or recovered")
    bytes: NonNegInt | None = None
    interface: str | None = None
    started_ns: int | None = Field(None, description="UTC ns when its capture was listening")
    stopped_ns: int | None = Field(None, description="UTC ns when its capture stopped (recovered: its last write)")
    synthetic: bool = Field(default=False, description="written by the twin from its own packets, not by tcpdump")


class CaptureStopped(_Event):
    event: Literal["capture_stopped"] = "capture_stopped"
    files: list[CaptureFileInfo]


class ErrorEvent(_Event):
    event: Literal["error"] = "error"
    kind: str = Field(description="the error's type name")
    message: str
    plan_index: NonNegInt | None = None
    fatal: bool


class RunInterrupted(_Event):
    event: Literal["run_interrupted"] = "run_interrupted"
    reason: Literal["signal", "device_lost", "output", "error"] = Field(
        description="output: a file could not be written (disk full, unwritable); resumable like a signal"
    )
    next_index: NonNegInt
    message: str


class RunFinished(_Event):
    event: Literal["run_finished"] = "run_finished"
    items_completed: NonNegInt
    answers: NonNegInt
    no_answers: NonNegInt


EVENT_TYPES: tuple[type[_Event], ...] = (
    RunStarted,
    RunResumed,
    ClockSample,
    Calibration,
    UtteranceStarted,
    UtteranceEnded,
    UtteranceCut,
    AnswerHeard,
    AnswerChecked,
    NoAnswer,
    Retry,
    TrySuperseded,
    TurnSkipped,
    StopSpoken,
    MarkerSent,
    ItemCompleted,
    DeviceLost,
    DeviceRestored,
    CaptureStarted,
    CaptureStopped,
    ErrorEvent,
    RunInterrupted,
    RunFinished,
)

Event = Annotated[
    RunStarted
    | RunResumed
    | ClockSample
    | Calibration
    | UtteranceStarted
    | UtteranceEnded
    | UtteranceCut
    | AnswerHeard
    | AnswerChecked
    | NoAnswer
    | Retry
    | TrySuperseded
    | TurnSkipped
    | StopSpoken
    | MarkerSent
    | ItemCompleted
    | DeviceLost
    | DeviceRestored
    | CaptureStarted
    | CaptureStopped
    | ErrorEvent
    | RunInterrupted
    | RunFinished,
    Field(discriminator="event"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_NAMES: tuple[str, ...] = tuple(t.model_fields["event"].default for t in EVENT_TYPES)


def events_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one line of ``events.jsonl``."""
    schema = EVENT_ADAPTER.json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "harness run event",
        "description": "One line of RUN_DIR/events.jsonl. Instants are integer UTC epoch nanoseconds "
        "(*_wall_ns) or monotonic nanoseconds (*_mono_ns); paths are relative to the run directory.",
        **schema,
    }


_HEAD = ("run_id", "seq", "event", "t_wall_ns", "t_mono_ns")


def parse_event(record: dict[str, Any]) -> Event:
    """Validate one decoded line; raises pydantic's ValidationError (also for a missing head field)."""
    missing = [key for key in _HEAD if key not in record]
    if missing:
        raise ValidationError.from_exception_data("event", [{"type": "missing", "loc": (missing[0],), "input": record}])
    return EVENT_ADAPTER.validate_python(record)


E = TypeVar("E", bound=_Event)

_SEQ = re.compile(rb'"seq":(\d+)')


class LoggedEvents(BaseModel):
    """What a run's log holds: its valid events in order, and how many lines were torn."""

    events: list[Event]
    torn_lines: int
    highest_seq: int = Field(description="highest seq seen, torn lines included; -1 when empty")


def read_events(path: str | Path) -> LoggedEvents:
    """Read and validate ``events.jsonl``; lines torn by a crash are counted and skipped.

    A line that is valid JSON but not a valid event is damage a crash cannot cause, so it raises
    :class:`InputError` naming the line.
    """
    path = Path(path)
    raw = path.read_bytes() if path.exists() else b""
    lines = raw.splitlines()
    records = list(read_jsonl(path)) if raw else []
    torn = sum(1 for line in lines if line.strip()) - len(records)
    highest = max((int(m.group(1)) for line in lines for m in _SEQ.finditer(line)), default=-1)
    events: list[Event] = []
    for record in records:
        try:
            events.append(parse_event(record))
        except ValidationError as exc:
            number = _line_of(lines, record)
            place = Place(line=number, column=1) if number else None
            raise InputError(path, f"not a valid event: {first_problem(exc)}", place) from None
    return LoggedEvents(events=events, torn_lines=torn, highest_seq=highest)


def _line_of(lines: list[bytes], record: dict[str, Any]) -> int | None:
    seq = record.get("seq")
    needle = f'"seq":{seq},'.encode()
    return next((n for n, line in enumerate(lines, start=1) if needle in line), None)


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    # The common fields first, so a line reads well with `less`.
    return {**{k: record[k] for k in _HEAD}, **{k: v for k, v in record.items() if k not in _HEAD}}


class EventLog:
    """The append-only event log of one run: assigns seq and timestamps, validates, fsyncs.

    Opening an existing log continues its numbering after the highest seq found in it (torn
    lines included, so a seq never appears twice in the file). Threads may emit concurrently
    (the answer checker logs from its own): seqs stay in file order.
    """

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.next_seq = read_events(self.path).highest_seq + 1
        self._log = JsonlLog(self.path, mode=0o600)
        self._lock = threading.Lock()

    def emit(self, event: E) -> E:
        """Log ``event`` with this run's id, the next seq and the time; returns it as written."""
        with self._lock:
            mono = time.monotonic_ns()
            head = {"run_id": self.run_id, "seq": self.next_seq, "t_wall_ns": time.time_ns(), "t_mono_ns": mono}
            model = event.model_copy(update=head)
            # Count the seq as used before writing: an exception (Ctrl-C) between the two can leave a
            # gap in the numbering but never a seq written twice.
            self.next_seq += 1
            self._log.append(_ordered(model.model_dump(mode="json")))
        return model

    def close(self) -> None:
        with self._lock:
            self._log.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
