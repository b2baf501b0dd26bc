"""The twin's parts without audio: configuration, grammar, and its loopback network traced into
a synthetic capture that the net stage reads back."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from harness.bench.transcribe import pronounce
from harness.cli.main import main
from harness.correlate.activations import detect_activations
from harness.correlate.capture import read_capture
from harness.net import read_traffic
from harness.rundir.truth import Cause
from harness.script import ScriptErrors, load_persona
from harness.twin.client import Network
from harness.twin.config import DEFAULT_CONFIG, load_config
from harness.twin.grammar import Catalogue, request_words
from harness.twin.link import Link
from harness.twin.servers import AddressBook, Servers
from harness.twin.wire import Wire

from conftest import require_tool

DEMO = Path(__file__).resolve().parents[1] / "utterances" / "demo.yaml"


def test_default_config_is_valid_and_covers_demo_skills():
    config = load_config()
    persona = load_persona(DEMO)
    for skill in persona.skills:
        assert skill.id in config.skills, skill.id
    assert any(e.purpose == "tracking" for e in config.skill("jeopardy").endpoints)
    assert config.skill("not-configured").endpoints[0].name == "{skill}.skill.test"


def test_config_errors_carry_line_and_column(tmp_path):
    bad = tmp_path / "twin.yaml"
    bad.write_text("seed: x\nnetwork:\n  device: 10.0.0.1\nfailures:\n  hang: 2\n  bogus: 1\n")
    with pytest.raises(ScriptErrors) as caught:
        load_config(bad)
    lines = [str(e) for e in caught.value.errors]
    assert lines[0].startswith(f"{bad}:1:7: seed:")
    assert (
        lines[1] == f"{bad}:3:11: network.device: 10.0.0.1 is not a loopback address (127.0.0.0/8): "
        "the twin never leaves this host"
    )
    assert lines[2].startswith(f"{bad}:5:9: failures.hang:")
    assert lines[3].startswith(f"{bad}:6:3: unknown key 'bogus'")


def test_twin_check_command(tmp_path, capsys):
    assert main(["twin", "check", str(DEFAULT_CONFIG)]) == 0
    bad = tmp_path / "twin.yaml"
    bad.write_text("answers:\n  delay_s: [2, 1]\n")
    assert main(["twin", "check", str(bad)]) == 1
    assert f"{bad}:2:12: answers.delay_s: delay_s must be [min, max]" in capsys.readouterr().err


def test_catalogue_holds_utterances_follow_ups_and_builtins():
    persona = load_persona(DEMO)
    catalogue = Catalogue([persona], ["stop", "what's the weather"], "Alexa")
    slept = catalogue.match("ask fitbit how i slept last night")
    assert (slept.skill_id, slept.utterance_id) == ("fitbit", "fitbit/2")
    follow = catalogue.match("i don't know")
    assert (follow.follow_up_of, follow.utterance_id) == ("jeopardy/1", "jeopardy/1")
    assert catalogue.match("play jeopardy").has_follow_ups
    assert catalogue.match("stop").is_stop and catalogue.match("nonsense words") is None
    assert "play jeopardy" in catalogue.jsgf() and request_words("Alexa, play Jeopardy!", "Alexa") == "play jeopardy"


def test_unknown_words_get_pronunciations_from_known_parts():
    dictionary = {"fit": "F IH T", "bit": "B IH T", "a": "AH", "b": "B IY"}
    assert pronounce("fitbit", dictionary.get) == "F IH T B IH T"
    assert pronounce("ab", dictionary.get) == "AH B IY"
    assert pronounce("zzz", dictionary.get) is None


@pytest.fixture
def loopback(tmp_path):
    require_tool("openssl")
    book = AddressBook("127.0.9.0/28", "127.0.9.16/28", ["amazon.com"])
    servers = Servers(book, "127.0.9.53", tmp_path)
    servers.start(
        ["avs-alexa-14-na.amazon.com", "unagi-na.amazon.com", "dts.podtrac.com", "hung.skill.test"],
        ["ntp-g7g.amazon.com"],
    )
    flows = []
    wire = Wire()
    yield Network("127.0.0.9", servers, flows.append, wire), flows, wire, book
    servers.stop()


def test_synthetic_capture_names_every_flow_like_the_truth(loopback, tmp_path):
    net, flows, wire, book = loopback
    cause = Cause(kind="background")
    session = net.connect("avs-alexa-14-na.amazon.com", cause, "voice")
    session.exchange(5000, 20000)
    session.close()
    net.connect("dts.podtrac.com", cause, "tracking").close()
    hung = net.connect("hung.skill.test", cause, "skill", stall_s=0.3)
    assert hung.closed and hung.flow.outcome == "stalled"
    net.time_query("ntp-g7g.amazon.com", cause)
    assert net.resolve("unknown.test", cause) is None
    assert book.addresses["avs-alexa-14-na.amazon.com"].startswith("127.0.9.") and book.is_platform(
        "unagi-na.amazon.com"
    )

    traffic = read_traffic([wire.write(tmp_path / "twin.pcap")], device="127.0.0.9")
    seen = {(r.protocol, r.local_port, r.remote_ip, r.remote_port): r for r in traffic.flows.itertuples()}
    assert len(seen) == len(flows) == 9  # 5 lookups, 3 TLS sessions, 1 time query
    for flow in flows:
        row = seen[(flow.protocol, flow.src_port, flow.dst_ip, flow.dst_port)]
        assert (row.first_ns, row.last_ns) == (flow.first_ns, flow.last_ns)
        if flow.app in ("tls", "ntp"):
            assert row.name == flow.endpoint
            assert row.name_source == ("sni" if flow.app == "tls" else "dns")
    voice = next(f for f in flows if f.purpose == "voice")
    assert voice.bytes_up > 5000 and voice.bytes_down > 20000


def test_voice_connection_carries_requests_in_the_echo_shape(loopback, tmp_path):
    """Boot (unrecorded), then two requests, a keep-alive and a metrics post: the detector finds
    exactly the two uploads, on an endpoint with no name, with the truth's onsets and bytes."""
    net, flows, wire, _ = loopback
    wire._recording = False  # as the twin boots: nothing is captured before it goes live
    config = load_config()
    session = net.connect("avs-alexa-14-na.amazon.com", Cause(kind="background"), "voice")
    segments = []
    link = Link(session, config.voice, segments.append, random.Random(1))
    wire.record()
    for seq, speech_s in ((1, 1.6), (2, 1.0)):
        upload = link.upload(Cause(kind="request", request_seq=seq))
        time.sleep(speech_s)
        answer = link.finish(upload, 8000, 4000, 20000)
        assert answer is not None
        time.sleep(2.5)  # the answer plays
    link.keepalive(Cause(kind="background"), 40, 40)
    net.connect("unagi-na.amazon.com", Cause(kind="request", request_seq=2), "metrics").post(15000, 4000, 0.8, 200)
    time.sleep(0.3)
    link.close()

    uploads = [s for s in segments if s.part == "upload"]
    answers = [s for s in segments if s.part == "answer"]
    assert [s.cause.request_seq for s in uploads] == [1, 2] and [s.cause.request_seq for s in answers] == [1, 2]
    assert all(20_000 <= s.opening_bytes <= 32_000 for s in uploads)
    assert all(not s.cut and s.bytes_down > 8000 for s in answers)
    assert [s.part for s in segments].count("keepalive") == 1
    voice = next(f for f in flows if f.purpose == "voice")
    assert all(s.connection.src_port == voice.src_port for s in segments)
    # every byte of the connection after its handshake is in one segment
    assert sum(s.bytes_up for s in segments) < voice.bytes_up < sum(s.bytes_up for s in segments) + 3000

    pcap = wire.write(tmp_path / "voice.pcap")
    view = read_capture([pcap], "127.0.0.9")
    found = detect_activations(view)
    assert [a.onset_ns for a in found.activations] == [s.first_ns for s in uploads]
    assert found.voice_source == "shape"  # no lookup, no ClientHello: the name is not in the capture
    assert found.voice_endpoints == [voice.dst_ip]
    address = view.flows.loc[view.flows["remote_ip"] == voice.dst_ip]
    assert address["name"].isna().all()


def test_stream_rate_looks_like_speech(loopback):
    net, _, _, _ = loopback
    config = load_config()
    segments = []
    link = Link(
        net.connect("avs-alexa-14-na.amazon.com", Cause(kind="background"), "voice"),
        config.voice,
        segments.append,
        random.Random(2),
    )
    upload = link.upload(Cause(kind="request", request_seq=1))
    time.sleep(3.0)
    link.finish(upload, 0, 0, 0)
    link.close()
    (segment,) = segments
    stream_bps = (segment.bytes_up - segment.opening_bytes) / ((segment.last_ns - segment.first_ns) / 1e9)
    assert 8_500 <= stream_bps <= 11_000  # ~9-10 KB/s on the wire beside the opening, like an Echo's speech
    assert 20_000 <= segment.opening_bytes <= 32_000 and segment.records_up >= 30
