"""Speech engines over real espeak-ng: output format, determinism, voices, failures."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import pytest

from harness.errors import ToolMissing
from harness.speech import SpeechError, VoiceInfo, get_engine
from harness.speech.espeak import EspeakEngine
from harness.speech.voices import match_voice, parse_voice

from conftest import require_tool


@pytest.fixture(scope="module")
def espeak() -> EspeakEngine:
    require_tool("espeak-ng")
    return EspeakEngine()


@pytest.fixture(scope="module")
def pyttsx3_engine():
    pytest.importorskip("pyttsx3", reason="pyttsx3 is not installed")
    require_tool("espeak-ng")  # pyttsx3's Linux driver is libespeak-ng
    return get_engine("pyttsx3")


def wav_format(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as wf:
        return wf.getnchannels(), wf.getsampwidth(), wf.getframerate(), wf.getnframes()


def test_espeak_renders_mono_16bit_wav(espeak: EspeakEngine, tmp_path: Path) -> None:
    out = tmp_path / "a.wav"
    espeak.render("Alexa, open Big Sky", "en-us", 175, 1.0, out)
    channels, width, rate, frames = wav_format(out)
    assert (channels, width, rate) == (1, 2, 22050)
    assert 0.8 < frames / rate < 3.0


def test_espeak_is_bit_identical(espeak: EspeakEngine, tmp_path: Path) -> None:
    digests = set()
    for n in range(3):
        espeak.render("Alexa, ask Fitbit how I slept.", "en-us+f2", 160, 1.0, tmp_path / f"{n}.wav")
        digests.add(hashlib.sha256((tmp_path / f"{n}.wav").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_espeak_text_is_never_an_option(espeak: EspeakEngine, tmp_path: Path) -> None:
    out = tmp_path / "dash.wav"
    espeak.render("-v xx --help", "en-us", 175, 1.0, out)
    assert wav_format(out)[3] / 22050 > 0.5


def test_espeak_voice_ids_in_all_three_forms(espeak: EspeakEngine, tmp_path: Path) -> None:
    digests = {}
    for voice in ("en-us", "gmw/en-us", "en-us+f2"):
        out = tmp_path / f"{voice.replace('/', '_')}.wav"
        espeak.render("Alexa, stop", voice, 175, 1.0, out)
        digests[voice] = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digests["en-us"] == digests["gmw/en-us"]
    assert digests["en-us+f2"] != digests["en-us"]


def test_espeak_unknown_voice_is_a_one_line_error(espeak: EspeakEngine, tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match="unknown voice 'xx-nowhere'"):
        espeak.render("Alexa, stop", "xx-nowhere", 175, 1.0, tmp_path / "x.wav")


def test_espeak_voices_list_ids_names_languages(espeak: EspeakEngine) -> None:
    voices = {v.id: v for v in espeak.voices()}
    assert "gmw/en-us" in voices
    assert "en-us" in voices["gmw/en-us"].languages
    assert voices["gmw/en-us"].name == "English (America)"


def test_missing_espeak_raises_tool_missing_with_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="apt-get install espeak-ng"):
        EspeakEngine().render("Alexa, stop", "en-us", 175, 1.0, tmp_path / "x.wav")


def test_pyttsx3_renders_valid_wav_without_chatter(
    pyttsx3_engine, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.wav"
    pyttsx3_engine.render("Alexa, open Big Sky", "en-us", 175, 1.0, out)
    channels, width, rate, frames = wav_format(out)
    assert (channels, width) == (1, 2)
    assert 0.8 < frames / rate < 3.0
    assert "Audio saved" not in capfd.readouterr().out


def test_pyttsx3_repeats_the_same_duration(pyttsx3_engine, tmp_path: Path) -> None:
    durations = []
    for n in range(4):
        out = tmp_path / f"{n}.wav"
        pyttsx3_engine.render("Alexa, play Jeopardy!", "en-us", 175, 1.0, out)
        _, _, rate, frames = wav_format(out)
        durations.append(frames / rate)
    assert max(durations) - min(durations) < 0.02 * min(durations)


def test_pyttsx3_maps_espeak_voice_ids(pyttsx3_engine) -> None:
    if pyttsx3_engine.version().split("; ")[1].split()[0] != "espeak":
        pytest.skip("pyttsx3 does not use its espeak driver here")
    assert pyttsx3_engine.driver_voice("en-us") == "gmw/en-us"
    assert pyttsx3_engine.driver_voice("gmw/en-us") == "gmw/en-us"
    assert pyttsx3_engine.driver_voice("en-us+f2") == "gmw/en-us+f2"


def test_pyttsx3_unknown_voice_is_an_error_not_a_fallback(pyttsx3_engine, tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match="no voice matches 'xx-nowhere'"):
        pyttsx3_engine.render("Alexa, stop", "xx-nowhere", 175, 1.0, tmp_path / "x.wav")


def test_parse_voice_splits_family_language_variant() -> None:
    request = parse_voice("gmw/en-US+f2")
    assert (request.family, request.language, request.variant, request.gender) == ("gmw", "en-us", "f2", "Female")
    assert parse_voice("en-us").family is None and parse_voice("en-us").variant is None


SAPI_LIKE = [
    VoiceInfo("TTS_MS_EN-US_DAVID_11.0", "Microsoft David", ("en_US",), "Male"),
    VoiceInfo("TTS_MS_EN-US_ZIRA_11.0", "Microsoft Zira", ("en_US",), "Female"),
    VoiceInfo("TTS_MS_EN-GB_HAZEL_11.0", "Microsoft Hazel", ("en_GB",), "Female"),
]


@pytest.mark.parametrize(
    ("voice", "expected"),
    [
        ("en-us", "Microsoft David"),
        ("en-us+f2", "Microsoft Zira"),
        ("en-gb", "Microsoft Hazel"),
        ("en-au", "Microsoft David"),
        ("TTS_MS_EN-GB_HAZEL_11.0", "Microsoft Hazel"),
        ("fr-fr", None),
    ],
)
def test_match_voice_on_other_drivers(voice: str, expected: str | None) -> None:
    found = match_voice(parse_voice(voice), SAPI_LIKE)
    assert (found.name if found else None) == expected
