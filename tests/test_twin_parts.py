"""The twin's parts without audio: configuration, grammar, and its loopback network traced into
a synthetic capture that the net stage reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.main import main
from harness.net import read_traffic
from harness.script import ScriptErrors, load_persona
from harness.rundir.truth import Cause
from harness.twin.client import Network
from harness.twin.config import DEFAULT_CONFIG, load_config
from harness.twin.grammar import Catalogue, pronounce, request_words
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
    assert lines[1] == f"{bad}:3:11: network.device: 10.0.0.1 is not a loopback address (127.0.0.0/8): the twin never leaves this host"
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
    servers.start(["avs-alexa-14-na.amazon.com", "dts.podtrac.com", "hung.skill.test"], ["ntp-g7g.amazon.com"])
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
    assert book.addresses["avs-alexa-14-na.amazon.com"].startswith("127.0.9.") and book.is_platform("unagi-na.amazon.com")

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
