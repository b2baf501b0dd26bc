"""``truth.jsonl``: what the twin heard, said and sent, one fsynced record per line.

Every record has ``record`` (its kind), ``seq`` (1, 2, ... in file order) and ``t_ns`` (UTC
epoch ns when it was written). Instants are UTC epoch ns on the host clock (the capture's too).
A writer builds a record without the head fields; :meth:`TruthLog.write` fills them in.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from harness.errors import InputError, first_problem
from harness.jsonl import JsonlLog, read_jsonl

SCHEMA_ID = "https://harness.invalid/schemas/truth.json"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)

    seq: int = Field(0, ge=0, description="1, 2, ... in file order")
    t_ns: int = Field(0, description="when the record was written, UTC epoch ns")


class TwinStarted(_Record):
    record: Literal["twin_started"] = "twin_started"
    device: str = Field(description="the twin's address on loopback")
    resolver: str = Field(description="ADDR:PORT of its DNS server")
    ports: dict[str, int] = Field(description="its servers' ports: dns, tls, ntp")
    addresses: dict[str, str] = Field(description="endpoint name -> address")
    seed: int | None
    config: str = Field(description='the configuration file, or "default"')
    config_sha256: str
    personas: list[str]
    requests: int = Field(description="size of the twin's request grammar")
    ear_device: str
    ear_rate: int
    mouth_device: str
    capture: Literal["synthetic", "external"]
    synthetic_capture: str | None


class Wake(_Record):
    record: Literal["wake"] = "wake"
    wall_ns: int | None = Field(description="end of the wake word in the audio (ADC time); null for a follow-up")
    noticed_ns: int | None = Field(description="when the twin knew")
    segment_onset_ns: int
    while_answering: bool
    follow_up: bool = Field(False, description="heard without the wake word during the open-mic window")


class Request(_Record):
    record: Literal["request"] = "request"
    wake_seq: int
    hypothesis: str | None = Field(description="the decoder's output")
    outcome: Literal["matched", "unknown", "misheard"]
    text: str | None
    skill_id: str | None = Field(description='"builtin" for built-in requests')
    utterance_id: str | None = Field(description="the persona's utterance id (a follow-up carries its utterance's)")
    onset_ns: int
    end_ns: int
    decode_s: float


class Answer(_Record):
    record: Literal["answer"] = "answer"
    request_seq: int = Field(description="the wake's seq")
    text: str
    onset_wall_ns: int = Field(description="first sample at the DAC")
    end_wall_ns: int = Field(description="last sample at the DAC")
    cut: bool = Field(description="stopped early")
    seconds: float = Field(description="seconds played")
    planned_seconds: float
    delay_s: float
    device: str


class Cause(BaseModel):
    """Why a flow was opened: a request (the wake's seq in the truth) or background."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["request", "background"]
    request_seq: int | None = None
    utterance_id: str | None = None
    skill_id: str | None = None


class Flow(_Record):
    """One flow, written when it ends (a keep-alive connection appears once, at its end)."""

    record: Literal["flow"] = "flow"
    cause: Cause
    purpose: str = Field(description="dns, voice, metrics, skill, tracking, content, advertising, time, keepalive, ...")
    endpoint: str = Field(description="the name looked up or sent as SNI")
    protocol: str = Field(description="tcp or udp")
    app: str = Field(description="tls, dns or ntp")
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    first_ns: int = Field(description="first packet (SYN or query sent)")
    last_ns: int = Field(description="last packet (last FIN-ACK or reply received)")
    bytes_up: int = Field(description="TLS/UDP payload bytes sent")
    bytes_down: int
    outcome: Literal["ok", "nxdomain", "stalled", "error", "timeout"]
    error: str | None


class Connection(BaseModel):
    """One TCP connection from the device: the endpoint it reaches (its SNI) and its 5-tuple."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int


class TwinLive(_Record):
    """The twin booted and began its traffic: what it sent before this record (the voice
    connection's lookup and handshake) predates the capture, as a real Echo's voice connection,
    opened at boot, predates a bench's capture."""

    record: Literal["twin_live"] = "twin_live"
    voice: Connection = Field(description="the long-lived voice connection every request and answer travels on")
    voice_opened_ns: int = Field(description="its first packet (SYN), before the capture")


class Segment(_Record):
    """Bytes of one purpose on a long-lived connection, written when the segment ends: a
    request's upload (opening burst, then the speech stream), its answer coming down, or one
    keep-alive exchange. Bytes are TLS record bytes (the TCP payload), as in a flow."""

    record: Literal["segment"] = "segment"
    cause: Cause = Field(description="the request (its wake's seq) for uploads and answers; background for keep-alives")
    part: Literal["upload", "answer", "keepalive"]
    connection: Connection
    first_ns: int = Field(description="first record sent (upload, keep-alive) or received (answer)")
    last_ns: int = Field(description="last record sent or received")
    bytes_up: int
    bytes_down: int
    opening_bytes: int = Field(0, description="upload: bytes of the opening burst (buffered wake word and first audio)")
    records_up: int = Field(description="records sent")
    cut: bool = Field(False, description="answer: cancelled before all of it came down (a new request, stop)")


class Failure(_Record):
    record: Literal["failure"] = "failure"
    kind: Literal["missed_wake", "no_answer", "hang"]
    wake_wall_ns: int | None = None
    request_seq: int | None = None
    endpoint: str | None = None


class TwinStopped(_Record):
    record: Literal["twin_stopped"] = "twin_stopped"
    ear_error: str | None = Field(description="null unless the ear failed")
    synthetic_packets: int | None


TruthRecord = Annotated[
    TwinStarted | TwinLive | Wake | Request | Answer | Flow | Segment | Failure | TwinStopped,
    Field(discriminator="record"),
]
TRUTH_ADAPTER: TypeAdapter[TruthRecord] = TypeAdapter(TruthRecord)
R = TypeVar("R", bound=_Record)


def truth_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one line of ``truth.jsonl``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "harness twin truth record",
        "description": "One line of RUN_DIR/truth.jsonl (twin runs): what the simulated Echo heard, said and sent.",
        **TRUTH_ADAPTER.json_schema(mode="serialization"),
    }


class TruthLog:
    """The append-only truth log; :meth:`write` is safe from any thread and returns the seq."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._log = JsonlLog(self.path, mode=0o600)
        self._lock = threading.Lock()
        self._seq = 0

    def write(self, record: _Record) -> int:
        with self._lock:
            self._seq += 1
            done = record.model_copy(update={"seq": self._seq, "t_ns": time.time_ns()})
            head = {"record": done.record, "seq": done.seq, "t_ns": done.t_ns}  # type: ignore[attr-defined]
            self._log.append({**head, **done.model_dump(mode="json", exclude=set(head))})
            return self._seq

    def close(self) -> None:
        with self._lock:
            self._log.close()


def read_truth(path: str | Path) -> list[TruthRecord]:
    """The records of a truth log (a line torn by a crash is skipped); a line that is not a
    valid record raises :class:`InputError` naming it."""
    records: list[TruthRecord] = []
    for number, raw in enumerate(read_jsonl(path), start=1):
        try:
            records.append(TRUTH_ADAPTER.validate_python(raw))
        except ValidationError as exc:
            raise InputError(path, f"record {number} is not a valid truth record: {first_problem(exc)}") from None
    return records
