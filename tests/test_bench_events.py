"""The bench's pure parts and the run directory's files: event log and schema, resume state,
markers, clock, manifest, truth."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.bench.clock import ClockPair, clock_pair, clock_status, step_between
from harness.bench.markers import MAGIC, Marker, MarkerSender, decode_marker, encode_marker, parse_target
from harness.bench.options import RunOptions
from harness.bench.record import host_info, versions
from harness.bench.resume import run_state
from harness.errors import HarnessError, InputError
from harness.rundir.events import (
    EVENT_NAMES,
    ClockSample,
    EventLog,
    ItemCompleted,
    NoAnswer,
    RunFinished,
    UtteranceEnded,
    UtteranceStarted,
    events_json_schema,
    parse_event,
    read_events,
)
from harness.rundir.layout import RunDir
from harness.rundir.manifest import ClockInfo, DeviceInfo, Manifest, Settings, read_manifest, write_manifest
from harness.rundir.truth import Cause, Flow, TruthLog, Wake, read_truth, truth_json_schema

TURN = {"plan_index": 0, "persona_id": "p", "skill_id": "s", "utterance_id": "s/1"}


def _started(log: EventLog, index: int = 0, turn: int = 0) -> int:
    ev = log.emit(
        UtteranceStarted(
            **{**TURN, "plan_index": index, "turn": turn},
            skill_name="S",
            text="Alexa, hi",
            audio_path="speech/x.wav",
            audio_sha256="0" * 64,
            duration_s=0.5,
            cache_hit=False,
            device="out",
        )
    )
    return ev.seq


def _ended(log: EventLog, started_seq: int, index: int = 0) -> None:
    log.emit(
        UtteranceEnded(
            **{**TURN, "plan_index": index},
            started_seq=started_seq,
            onset_wall_ns=1,
            end_wall_ns=2,
            onset_mono_ns=1,
            end_mono_ns=2,
            latency_s=0.01,
            device="out",
            sample_rate=22050,
            frames=100,
            backend="sounddevice",
        )
    )


def _completed(log: EventLog, index: int) -> None:
    log.emit(ItemCompleted(plan_index=index, persona_id="p", utterance_id="s/1", answers=0, no_answers=1))


def test_schema_is_well_formed_and_covers_every_event() -> None:
    schema = events_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_NAMES)
    defs = schema["$defs"]
    text = json.dumps(schema)
    # every reference resolves to a definition
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in defs, ref
    for name in EVENT_NAMES:
        definition = defs[mapping[name].removeprefix("#/$defs/")]
        assert {"run_id", "seq", "event", "t_wall_ns", "t_mono_ns"} <= set(definition["required"]) | {"event"}
        assert definition["properties"]["event"]["const"] == name


def test_event_log_numbers_validates_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, "r1") as log:
        log.emit(ClockSample(offset_ns=5, step_ns=None))
        with pytest.raises(ValidationError):
            log.emit(ClockSample(offset_ns="late"))  # wrong type and a missing field
        _started(log)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = path.read_bytes()
    with EventLog(path, "r1") as log:
        assert log.next_seq == 2
        log.emit(RunFinished(items_completed=0, answers=0, no_answers=0))
    after = path.read_bytes()
    assert after.startswith(before)
    lines = [json.loads(line) for line in after.splitlines()]
    assert [r["seq"] for r in lines] == [0, 1, 2]
    assert list(lines[0])[:5] == ["run_id", "seq", "event", "t_wall_ns", "t_mono_ns"]
    for record in lines:
        assert parse_event(record).event == record["event"]
    assert lines[1]["run_id"] == "r1" and lines[1]["t_wall_ns"] > 0 and lines[1]["t_mono_ns"] > 0


def test_a_line_without_its_head_is_not_an_event() -> None:
    record = ClockSample(run_id="r", seq=1, t_wall_ns=1, t_mono_ns=1, offset_ns=0, step_ns=None).model_dump()
    del record["seq"]
    with pytest.raises(ValidationError, match="seq"):
        parse_event(record)


def test_torn_line_is_skipped_and_its_seq_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, "r1") as log:
        log.emit(ClockSample(offset_ns=1, step_ns=None))
    with open(path, "ab") as fh:
        fh.write(b'{"run_id":"r1","seq":1,"event":"clock_sa')  # a record torn by kill -9
    logged = read_events(path)
    assert (len(logged.events), logged.torn_lines, logged.highest_seq) == (1, 1, 1)
    with EventLog(path, "r1") as log:
        ev = log.emit(ClockSample(offset_ns=2, step_ns=None))
    assert ev.seq == 2
    assert [e.seq for e in read_events(path).events] == [0, 2]


def test_a_valid_json_line_that_is_no_event_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, "r1") as log:
        log.emit(ClockSample(offset_ns=1, step_ns=None))
    with open(path, "ab") as fh:
        fh.write(b'{"run_id":"r1","seq":1,"event":"clock_sample","t_wall_ns":1}\n')
    with pytest.raises(InputError, match=r"events.jsonl:2:1: not a valid event"):
        read_events(path)


def test_run_state_finds_next_item_and_cut_utterances(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, "r1") as log:
        s0 = _started(log, 0)
        _ended(log, s0, 0)
        log.emit(NoAnswer(**TURN, started_seq=s0, listen_started_wall_ns=3, waited_s=1.5, final=True))
        _completed(log, 0)
        s1 = _started(log, 1)
        _ended(log, s1, 1)
        s1b = _started(log, 1, turn=1)  # the follow-up was cut off by a crash
    state = run_state(read_events(path).events, plan_items=3)
    assert state.completed == {0}
    assert state.next_index == 1
    assert [e.seq for e in state.open_utterances] == [s1b]
    assert (state.answers, state.no_answers, state.finished) == (0, 1, False)
    assert run_state(read_events(path).events, plan_items=1).next_index == 1


def test_marker_round_trip_and_rejection() -> None:
    marker = Marker(
        "20261127T152625Z-a1b2c3",
        seq=41,
        onset_wall_ns=1_790_000_000_123_456_789,
        sent_wall_ns=1_790_000_000_100_000_000,
        plan_index=7,
        attempt=2,
        turn=1,
    )
    payload = encode_marker(marker)
    assert payload.startswith(MAGIC)
    assert len(payload) == 37 + len(marker.run_id)
    assert decode_marker(payload) == marker
    assert decode_marker(payload[:-1]) is None
    assert decode_marker(b"XXXX" + payload[4:]) is None
    assert decode_marker(b"") is None


def test_marker_reaches_a_loopback_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        sender = MarkerSender("127.0.0.1", rx.getsockname()[1])
        try:
            sent, payload = sender.send("run-x", 3, 123, 0, 1, 0)
        finally:
            sender.close()
        data, _ = rx.recvfrom(2048)
    assert data == payload
    assert decode_marker(data) == sent
    assert sent.onset_wall_ns == 123 and sent.sent_wall_ns > 0


@pytest.mark.parametrize("text", ["host", "host:", ":9", "h:0", "h:70000", "h:x"])
def test_bad_marker_targets(text: str) -> None:
    with pytest.raises(HarnessError, match="expected HOST:PORT"):
        parse_target(text)


def test_marker_targets() -> None:
    assert parse_target("127.0.0.1:9999") == ("127.0.0.1", 9999)
    assert parse_target("[::1]:53") == ("::1", 53)


def test_clock_step_detection() -> None:
    a = ClockPair(wall_ns=1_000_000_000_000, mono_ns=5_000_000_000)
    slewed = ClockPair(wall_ns=a.wall_ns + 60_000_000_000 + 20_000_000, mono_ns=a.mono_ns + 60_000_000_000)
    stepped = ClockPair(wall_ns=a.wall_ns + 1_000_000_000 - 2_000_000_000, mono_ns=a.mono_ns + 1_000_000_000)
    assert step_between(a, slewed) is None
    assert step_between(a, stepped) == -2_000_000_000
    now = clock_pair()
    assert abs(now.offset_ns - (now.wall_ns - now.mono_ns)) == 0


def test_clock_status_never_fails() -> None:
    status = clock_status()
    assert status.source in {"chrony", "timedatectl", "unknown"}
    if status.source == "unknown":
        assert status.synchronized is None


def _manifest(marker: str | None = None) -> Manifest:
    return Manifest(
        run_id="r1",
        status="running",
        created_wall_ns=1,
        updated_wall_ns=2,
        host=host_info(),
        versions=versions(),
        scripts=[],
        plan=["p:s/1#1"],
        backend="sounddevice",
        output_device=DeviceInfo(spec="harness_out", name="harness_out"),
        input_device=None,
        settings=Settings(
            retries=None,
            marker=marker,
            transcribe=False,
            capture=None,
            capture_device=None,
            capture_tail_s=2.0,
            device_wait_s=60.0,
        ),
        clock=ClockInfo(status=clock_status()),
    )


def test_manifest_round_trip_is_private(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    manifest = _manifest()
    write_manifest(run, manifest)
    assert stat.S_IMODE(os.stat(run.manifest).st_mode) == 0o600
    assert read_manifest(run) == manifest
    assert manifest.versions["harness"] and "espeak-ng" in manifest.versions
    run.manifest.write_text("{}")
    with pytest.raises(InputError, match="not a valid manifest"):
        read_manifest(run)


def test_a_damaged_marker_in_the_manifest_is_one_line_naming_the_manifest(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(InputError, match=r"manifest.json: settings.marker: expected HOST:PORT, got 'nowhere'"):
        RunOptions().resumed(run, _manifest(marker="nowhere"))
    resumed = RunOptions().resumed(run, _manifest(marker="127.0.0.1:9"))
    assert resumed.marker == ("127.0.0.1", 9) and resumed.output_device == "harness_out"


def test_truth_records_are_typed_numbered_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    log = TruthLog(path)
    wake = log.write(Wake(wall_ns=5, noticed_ns=6, segment_onset_ns=4, while_answering=False))
    flow = Flow(
        cause=Cause(kind="request", request_seq=wake),
        purpose="voice",
        endpoint="avs.example",
        protocol="tcp",
        app="tls",
        src_ip="127.0.0.1",
        src_port=5,
        dst_ip="127.0.0.2",
        dst_port=443,
        first_ns=7,
        last_ns=9,
        bytes_up=10,
        bytes_down=20,
        outcome="ok",
        error=None,
    )
    assert log.write(flow) == 2
    log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    records = read_truth(path)
    assert [(r.record, r.seq) for r in records] == [("wake", 1), ("flow", 2)]
    assert records[1].cause.request_seq == 1 and records[0].t_ns > 0
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first)[:3] == ["record", "seq", "t_ns"]
    assert set(truth_json_schema()["discriminator"]["mapping"]) >= {"wake", "flow", "request", "answer"}
    with open(path, "a") as fh:
        fh.write('{"record": "wake", "seq": 3}\n')
    with pytest.raises(InputError, match="record 3 is not a valid truth record"):
        read_truth(path)
