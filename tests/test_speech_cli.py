"""`harness synth`, `harness voices`, `harness plan` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli.main import main
from harness.script import build_plan, load_persona
from harness.script.duration import clock_text as _clock
from harness.speech import spoken_texts, synthesize

from conftest import require_tool

PERSONA = """\
persona: {id: tiny, name: Tiny, category: Test}
session: {gap_s: 3, answer_timeout_s: 6}
skills:
  - id: fitbit
    name: Fitbit
    invocation: fitbit
    utterances:
      - text: Alexa, open Fitbit
        follow_ups: [How many steps?]
      - text: ask Fitbit how I slept
        repeat: 2
"""


@pytest.fixture(autouse=True)
def _espeak() -> None:
    require_tool("espeak-ng")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(PERSONA)
    return path


def test_synth_then_served_from_cache_and_exported(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert main(["synth", str(script), "--cache", str(cache)]) == 0
    first = capsys.readouterr().out
    assert "4 texts (4 distinct): 0 from the cache, 4 synthesised" in first
    assert main(["synth", str(script), "--cache", str(cache), "--out", str(out)]) == 0
    second = capsys.readouterr().out
    assert "4 texts (4 distinct): 4 from the cache, 0 synthesised" in second
    assert "new" not in second
    exported = sorted(p.name for p in (out / "tiny").iterdir())
    assert exported == ["fitbit_1.wav", "fitbit_1_followup-1.wav", "fitbit_2.wav", "stop.wav"]
    persona = load_persona(script)
    spoken = {t.utterance_id: t.text for t in spoken_texts(persona, build_plan(persona))}
    assert spoken["fitbit/2"] == "Alexa, ask Fitbit how I slept"  # wake word prefixed
    expected = synthesize(spoken["fitbit/2"], persona.speech, cache)
    assert (out / "tiny" / "fitbit_2.wav").read_bytes() == expected.path.read_bytes()


def test_synth_engine_and_voice_override(script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    assert main(["synth", str(script), "--cache", str(cache)]) == 0
    assert main(["synth", str(script), "--cache", str(cache), "--voice", "en-us+f2"]) == 0
    assert "0 from the cache, 4 synthesised" in capsys.readouterr().out


def test_synth_pyttsx3_engine(script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyttsx3", reason="pyttsx3 is not installed")
    assert main(["synth", str(script), "--cache", str(tmp_path), "--engine", "pyttsx3"]) == 0
    output = capsys.readouterr().out
    assert "4 synthesised" in output and "Audio saved" not in output


def test_synth_unknown_voice_is_one_line_exit_1(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["synth", str(script), "--cache", str(tmp_path), "--voice", "xx-nowhere"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown voice 'xx-nowhere'" in err


def test_synth_bad_script_reports_file_line_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PERSONA.replace("invocation: fitbit", "invocaton: fitbit"))
    assert main(["synth", str(bad), "--cache", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"{bad}:4:5: missing key 'invocation'" in err
    assert not (tmp_path / "cache").exists()


def test_synth_without_paths_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth"])
    assert exc.value.code == 2


def test_voices_lists_espeak_voices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voices", "--engine", "espeak", "--language", "en"]) == 0
    output = capsys.readouterr().out
    assert "gmw/en-us" in output and "gmw/fr" not in output


def test_voices_lists_pyttsx3_voices(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyttsx3", reason="pyttsx3 is not installed")
    assert main(["voices", "--engine", "pyttsx3"]) == 0
    assert "gmw/en-us" in capsys.readouterr().out


def test_plan_order_and_estimate(script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    assert main(["plan", str(script), "--cache", str(cache)]) == 0
    output = capsys.readouterr().out
    persona = load_persona(script)
    plan = build_plan(persona)
    assert [i.utterance_id for i in plan] == ["fitbit/1", "fitbit/2", "fitbit/2"]
    said = {t.utterance_id: synthesize(t.text, persona.speech, cache).duration_s for t in spoken_texts(persona, plan)}
    speech = said["fitbit/1"] + said["fitbit/1/followup-1"] + 2 * said["fitbit/2"]
    estimate = speech + 2 * 3.0 + 4 * 6.0  # 2 gaps, 4 answer waits (3 utterances + 1 follow-up)
    worst = estimate + 4 * (30.0 + said["stop"])
    row = [line for line in output.splitlines() if line.startswith("│ tiny")][-1]
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells == ["tiny", "3", f"{speech:.1f}", "6.0", "24.0", _clock(estimate), _clock(worst)]
    assert "answer_timeout_s" in output
    for n, uid in enumerate(["fitbit/1", "fitbit/2", "fitbit/2"]):
        assert any(line.startswith(f"│ {n} ") and uid in line for line in output.splitlines())


def test_plan_seed_changes_shuffled_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "shuffled.yaml"
    utterances = "\n".join(f"      - text: Alexa, ask Fitbit question {n}" for n in range(1, 7))
    path.write_text(
        PERSONA.split("skills:")[0].replace("answer_timeout_s: 6", "answer_timeout_s: 6, order: shuffled")
        + "skills:\n  - id: fitbit\n    name: Fitbit\n    invocation: fitbit\n    utterances:\n"
        + utterances
        + "\n"
    )
    orders = []
    for seed in ("1", "2"):
        assert main(["plan", str(path), "--seed", seed, "--cache", str(tmp_path / "cache")]) == 0
        lines = capsys.readouterr().out.splitlines()
        orders.append([line.split("│")[4].strip() for line in lines if line.startswith("│ ") and "fitbit/" in line])
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]
