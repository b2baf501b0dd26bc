"""Attribution on a run built for real: events written with the bench's EventLog, traffic made
on loopback and captured by tcpdump, names served by a local DNS resolver.

The "device" is 127.0.66.1. After each utterance onset it streams a request to its voice endpoint
(127.0.66.10, TLS SNI avs-alexa-na.amazon.com), looks up its skill's host at the resolver
(127.0.66.20:53) and talks to it (skill A: 127.0.66.2, skill B: 127.0.66.3 with a hostile SNI);
throughout, a periodic UDP heartbeat goes to 127.0.66.4. Sync markers go from 127.0.66.8.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pandas as pd
import pytest
from test_report_html import chromium_dom

from harness.bench.markers import Marker, encode_marker
from harness.capture import start_capture
from harness.correlate import AttributionSettings, correlate_run
from harness.net import synth
from harness.report import write_report
from harness.report.page import SCRIPT_BLOCK
from harness.rundir.analysis import read_analysis, write_analysis
from harness.rundir.events import (
    CaptureFileInfo,
    EventLog,
    MarkerSent,
    RunStarted,
    StopSpoken,
    UtteranceEnded,
    UtteranceStarted,
)
from harness.rundir.layout import RunDir
from harness.rundir.manifest import Settings, write_manifest
from harness.rundir.tables import TABLES

from conftest import require_root, require_tool, test_manifest

DEVICE = "127.0.66.1"
RESOLVER = ("127.0.66.20", 53)
VOICE = ("127.0.66.10", 443)
HEARTBEAT = ("127.0.66.4", 8125)
HOSTILE_SNI = "<script>alert(1)</script>\"'.test"
SKILLS = {
    "weather": ("Wëather ☂", "api.weather-skill.test", "127.0.66.2", "api.weather-skill.test"),
    "evil": (
        "<script>document.title='pwned'</script> \"quoted\" 日本",
        "api.evil-skill.test",
        "127.0.66.3",
        HOSTILE_SNI,
    ),
}
ORDER = ["weather", "evil", "weather", "evil"]
LEAD_S, SPACING_S, TAIL_S, WINDOW_S = 6.0, 3.0, 6.0, 2.5


class Servers:
    """Local endpoints: a DNS resolver, TCP sinks that answer every read, UDP sinks."""

    def __init__(self, names: dict[str, str]) -> None:
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        dns = self._udp(RESOLVER)
        self._spawn(self._resolve, dns, names)
        for address in [VOICE, *((ip, 443) for _, _, ip, _ in SKILLS.values())]:
            self._spawn(self._accept, self._tcp(address))
        for address in (HEARTBEAT, ("127.0.66.9", 9999)):
            self._spawn(self._drain, self._udp(address))

    def _udp(self, address) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(address)
        s.settimeout(0.2)
        self.socks.append(s)
        return s

    def _tcp(self, address) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
        s.listen()
        s.settimeout(0.2)
        self.socks.append(s)
        return s

    def _spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _resolve(self, sock: socket.socket, names: dict[str, str]) -> None:
        while not self.stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            ident = struct.unpack_from("!H", query)[0]
            labels, pos = [], 12
            while query[pos]:
                labels.append(query[pos + 1 : pos + 1 + query[pos]].decode())
                pos += 1 + query[pos]
            name = ".".join(labels)
            sock.sendto(synth.dns_response(name, [(name, "A", names[name])], ident), peer)

    def _accept(self, listener: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._answer, conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        with conn:
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                    if data:
                        conn.sendall(b"k" * 64)
                except TimeoutError:
                    continue
                except OSError:  # the device closed first (reset): this conversation is over
                    return
                if not data:
                    return

    def _drain(self, sock: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                sock.recvfrom(65536)
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=2)
        for s in self.socks:
            s.close()


def _connect(address) -> socket.socket:
    s = socket.create_connection(address, timeout=2, source_address=(DEVICE, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _lookup(name: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((DEVICE, 0))
        s.settimeout(2)
        s.sendto(synth.dns_query(name), RESOLVER)
        answer = s.recv(512)
    return socket.inet_ntoa(answer[-4:])


def _heartbeat(stop: threading.Event) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((DEVICE, 0))
        while not stop.wait(0.8):
            s.sendto(b"hb" * 60, HEARTBEAT)


def _upload(voice: socket.socket) -> None:
    """A request as an Echo sends it: an opening burst (wake word and context), then the speech
    streamed in small records for as long as it is spoken (the shape the detector looks for)."""
    voice.sendall(b"v" * 22_000)
    for _ in range(24):
        time.sleep(0.05)
        voice.sendall(b"v" * 500)


def _stop(log: EventLog, voice: socket.socket, index: int, skill: str) -> None:
    """The bench's own "Alexa, stop" after an answer that ran too long: a request the device hears."""
    onset = time.time_ns()
    _upload(voice)
    log.emit(
        StopSpoken(
            plan_index=index,
            persona_id="loop",
            skill_id=skill,
            utterance_id=f"{skill}/{index}",
            reason="too_long",
            text="Alexa, stop",
            audio_path="speech/stop.wav",
            audio_sha256="0" * 64,
            onset_wall_ns=onset,
            end_wall_ns=onset + 500_000_000,
            onset_mono_ns=0,
            end_mono_ns=500_000_000,
            latency_s=0.0,
            device="lo",
            sample_rate=22050,
            frames=11025,
            backend="loopback",
        )
    )


def _utterance(log: EventLog, marker_sock: socket.socket, voice: socket.socket, index: int, skill: str) -> None:
    name, host, _, sni = SKILLS[skill]
    common = {"plan_index": index, "persona_id": "loop", "skill_id": skill, "utterance_id": f"{skill}/{index}"}
    started = log.emit(
        UtteranceStarted(
            **common,
            skill_name=name,
            text=f"Alexa, ask {name}",
            audio_path="speech/x.wav",
            audio_sha256="0" * 64,
            duration_s=0.5,
            cache_hit=True,
            device="lo",
        )
    )
    onset = time.time_ns()
    marker = Marker(log.run_id, started.seq, onset, time.time_ns(), index, 1, 0)
    payload = encode_marker(marker)
    marker_sock.sendto(payload, ("127.0.66.9", 9999))
    log.emit(
        MarkerSent(
            **common,
            started_seq=started.seq,
            destination="127.0.66.9:9999",
            onset_wall_ns=onset,
            sent_wall_ns=marker.sent_wall_ns,
            payload_hex=payload.hex(),
        )
    )
    _upload(voice)
    log.emit(
        UtteranceEnded(
            **common,
            started_seq=started.seq,
            onset_wall_ns=onset,
            end_wall_ns=onset + 500_000_000,
            onset_mono_ns=0,
            end_mono_ns=500_000_000,
            latency_s=0.0,
            device="lo",
            sample_rate=22050,
            frames=11025,
            backend="loopback",
        )
    )
    address = _lookup(host)
    with _connect((address, 443)) as s:
        s.sendall(synth.client_hello(sni))
        s.recv(64)
        s.sendall(b"q" * 400)
        s.recv(64)


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory) -> RunDir:
    require_root()
    require_tool("tcpdump")
    run = RunDir(tmp_path_factory.mktemp("run"))
    run_dir = run.root
    names = {host: ip for _, host, ip, _ in SKILLS.values()}
    servers = Servers(names)
    stop = threading.Event()
    capture = start_capture("lo", run.capture, bpf="net 127.0.66.0/24")
    beat = threading.Thread(target=_heartbeat, args=(stop,), daemon=True)
    try:
        beat.start()
        with (
            EventLog(run.events, "loop-run") as log,
            _connect(VOICE) as voice,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker_sock,
        ):
            marker_sock.bind(("127.0.66.8", 0))
            voice.sendall(synth.client_hello("avs-alexa-na.amazon.com"))
            log.emit(
                RunStarted(
                    harness_version="test",
                    personas=["loop"],
                    plan_items=len(ORDER),
                    seeds={"loop": None},
                    backend="loopback",
                    output_device="lo",
                    input_device=None,
                    marker="127.0.66.9:9999",
                )
            )
            start = time.monotonic()
            for i, skill in enumerate(ORDER):
                time.sleep(max(0.0, start + LEAD_S + i * SPACING_S - time.monotonic()))
                _utterance(log, marker_sock, voice, i, skill)
            time.sleep(max(0.0, start + LEAD_S + len(ORDER) * SPACING_S - time.monotonic()))
            _stop(log, voice, len(ORDER) - 1, ORDER[-1])
            time.sleep(max(0.0, start + LEAD_S + (len(ORDER) + 1) * SPACING_S + TAIL_S - time.monotonic()))
    finally:
        stop.set()
        beat.join()
        files = capture.stop(tail_s=0.3)
        servers.close()
    infos = [
        CaptureFileInfo(
            path=run.relative(f.path),
            sha256=f.sha256,
            bytes=f.bytes,
            interface=f.interface,
            started_ns=f.started_ns,
            stopped_ns=f.stopped_ns,
        )
        for f in files
    ]
    write_manifest(
        run,
        test_manifest(
            "loop-run",
            plan=[f"loop:{s}/{i}" for i, s in enumerate(ORDER)],
            captures=infos,
            settings=Settings(
                retries=None,
                marker="127.0.66.9:9999",
                transcribe=False,
                capture="lo",
                capture_device=DEVICE,
                capture_tail_s=0.3,
                device_wait_s=1.0,
            ),
        ),
    )
    result = correlate_run(run_dir, settings=AttributionSettings(max_window_s=WINDOW_S))
    write_analysis(run, result.summary, result.tables)
    return run


@pytest.mark.root
def test_markers_align_loopback_clocks(loop_run):
    summary, _ = read_analysis(loop_run)
    clock = summary.clock
    assert clock.method == "markers" and clock.markers == len(ORDER)
    assert abs(clock.offset_s) < 0.05  # one host, one clock: only the send-to-capture delay is left


@pytest.mark.root
def test_every_utterance_has_its_activation(loop_run):
    summary, tables = read_analysis(loop_run)
    u = tables["utterances"]
    assert len(u) == len(ORDER) + 1 and u["activation_id"].notna().all()
    assert summary.counts.activations == len(ORDER) + 1
    assert summary.activations.voice_endpoints == ["avs-alexa-na.amazon.com"]
    assert ((u["activation_lag_s"] > -0.3) & (u["activation_lag_s"] < 0.5)).all()


@pytest.mark.root
def test_the_benchs_stop_phrase_is_an_utterance_of_the_run_not_a_spontaneous_wake(loop_run):
    summary, tables = read_analysis(loop_run)
    u = tables["utterances"]
    (stop,) = u[u["kind"] == "stop"].itertuples()
    assert stop.text == "Alexa, stop" and stop.plan_index == len(ORDER) - 1 and pd.notna(stop.activation_id)
    assert summary.counts.activations_without_utterance == 0
    assert list(stop.endpoint_ids) == []  # it asks no skill anything: skills are scored on the plan's requests
    at = tables["attributions"]
    assert set(at["utterances"]) == {ORDER.count("weather"), ORDER.count("evil")}


@pytest.mark.root
def test_attribution_matches_what_each_skill_contacted(loop_run):
    _, tables = read_analysis(loop_run)
    u = tables["utterances"]
    for row in u[u["kind"] == "request"].itertuples():
        expected = SKILLS[row.skill_id][3]
        assert expected in list(row.endpoint_ids), (row.skill_id, list(row.endpoint_ids))
        other = SKILLS["evil" if row.skill_id == "weather" else "weather"][3]
        assert other not in list(row.endpoint_ids)
        assert "127.0.66.4" not in list(row.endpoint_ids)  # the heartbeat is background
    e = tables["attributions"]
    hits = {(r.skill_id, r.endpoint_id) for r in e[e["attributed"]].itertuples()}
    assert ("weather", "api.weather-skill.test") in hits and ("evil", HOSTILE_SNI) in hits
    assert ("weather", HOSTILE_SNI) not in hits and ("evil", "api.weather-skill.test") not in hits
    beat = e[e["endpoint_id"] == "127.0.66.4"]
    assert len(beat) == 2 and (beat["contacted"] == beat["utterances"]).all()  # in every window...
    assert not beat["attributed"].any() and (beat["background_rate"] > 0.8).all()  # ...and in the background too
    contacted = set(tables["contacts"]["endpoint_id"])
    assert {"127.0.66.9", "127.0.66.20"}.isdisjoint(
        contacted | set(e["endpoint_id"])
    )  # markers and DNS are not contacts


@pytest.mark.root
def test_analysis_files_are_written(loop_run):
    for name in TABLES:
        csv = pd.read_csv(loop_run.table(name, "csv"))
        assert len(csv) == len(pd.read_parquet(loop_run.table(name, "parquet")))
    summary = json.loads(loop_run.summary.read_text())
    assert summary["counts"]["utterances"] == len(ORDER) + 1


@pytest.mark.root
def test_analysis_tables_load_with_their_dtypes_and_every_key_resolves(loop_run):
    tables = {name: pd.read_parquet(loop_run.table(name, "parquet")) for name in TABLES}
    for name, frame in tables.items():
        for col in TABLES[name]:
            dtype = str(frame[col.name].dtype)
            if col.name.endswith("_ns"):
                assert dtype in ("int64", "Int64"), (name, col.name, dtype)  # instants: integer UTC ns, no fix-up
            expected = {"str": "str", "int": "int64", "int?": "Int64", "float": "float64", "bool": "bool"}.get(
                col.kind, "object"
            )
            assert dtype == expected, (name, col.name, dtype)
        assert set(frame["run_id"]) <= {"loop-run"}
    u, a, e, at, c = (tables[n] for n in ("utterances", "activations", "endpoints", "attributions", "contacts"))
    assert u["utterance_seq"].is_unique and e["endpoint_id"].is_unique and a["activation_id"].is_unique
    # every key resolves: a join on it finds exactly one row on the other side
    assert set(u["activation_id"].dropna()) <= set(a["activation_id"])
    assert set(a["utterance_seq"].dropna()) <= set(u["utterance_seq"])
    linked = u.dropna(subset=["activation_id"]).merge(a, on="activation_id", suffixes=("", "_a"))
    assert (linked["utterance_seq"] == linked["utterance_seq_a"]).all() and len(linked) == len(ORDER) + 1
    endpoint_ids = set(e["endpoint_id"])
    assert set(at["endpoint_id"]) <= endpoint_ids and set(c["endpoint_id"]) <= endpoint_ids
    assert {x for ids in u["endpoint_ids"] for x in ids} <= endpoint_ids
    assert {x for ids in a["endpoint_ids"] for x in ids} <= endpoint_ids
    # contacts carry where they went
    assert (c["remote_port"] > 0).all() and set(c["protocol"]) <= {"tcp", "udp"} and (c["remote_ip"] != "").all()
    weather = c[c["endpoint_id"] == "api.weather-skill.test"]
    assert set(weather["remote_port"]) == {443} and set(weather["protocol"]) == {"tcp"}


@pytest.mark.root
def test_report_of_hostile_run_runs_no_script(loop_run, tmp_path):
    path = write_report(loop_run, tmp_path / "report.html")
    text = path.read_text()
    assert text.count(SCRIPT_BLOCK) == 1  # the page's own sort and filter script, and nothing else runs
    assert "<script" not in text.replace(SCRIPT_BLOCK, "").lower()
    dom = chromium_dom(path)
    assert "pwned" not in dom.split("</title>")[0]
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom or "&lt;script&gt;document.title=" in dom
    assert "Wëather ☂" in dom and "日本" in dom


@pytest.mark.root
def test_a_capture_that_misses_the_run_is_refused_in_one_line(loop_run, echo_captures, capsys):
    """A real Echo capture from 2018 against this run: no clock maps one onto the other."""
    from harness.cli.main import main

    capture = echo_captures / "tell_me_a_joke_5x30s.pcapng"
    assert main(["correlate", str(loop_run.root), "--pcap", str(capture), "--device", "192.168.86.40"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "do not overlap in time" in line and "2018-10-22" in line
