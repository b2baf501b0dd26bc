"""The plan of a run (order, shuffle, repeats, wake word) and the lint warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.script import (
    Persona,
    build_plan,
    check_file,
    estimated_seconds,
    load_personas,
    spoken_text,
    starts_with_wake_word,
)


def persona(**session: object) -> Persona:
    return Persona.model_validate(
        {
            "persona": {"id": "p", "name": "P", "category": "Test"},
            "session": session,
            "skills": [
                {
                    "id": "a",
                    "name": "A",
                    "invocation": "a",
                    "utterances": [{"text": "Alexa, open a"}, {"text": "ask a for news", "repeat": 2}],
                },
                {
                    "id": "b",
                    "name": "B",
                    "invocation": "b",
                    "utterances": [
                        {"text": "Alexa, open b", "follow_ups": ["yes", "stop"], "expect": {"keywords": ["welcome"]}}
                    ],
                },
            ],
            "builtins": [{"text": "what time is it"}],
        }
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alexa, open Fitbit", "Alexa, open Fitbit"),
        ("alexa open fitbit", "alexa open fitbit"),
        ("ALEXA... open Fitbit", "ALEXA... open Fitbit"),
        ("  Alexa! open Fitbit", "Alexa! open Fitbit"),
        ("open Fitbit", "Alexa, open Fitbit"),
        ("Alexander, open Fitbit", "Alexa, Alexander, open Fitbit"),
        ("What's new, Alexa?", "Alexa, What's new, Alexa?"),
    ],
)
def test_wake_word_is_prefixed_only_when_missing(text: str, expected: str) -> None:
    assert spoken_text(text, "Alexa") == expected


def test_multi_word_wake_word() -> None:
    assert starts_with_wake_word("hey computer, lights on", "Hey Computer")
    assert spoken_text("lights on", "Hey Computer") == "Hey Computer, lights on"


def test_plan_as_written() -> None:
    plan = build_plan(persona())
    assert [(i.index, i.utterance_id, i.repeat) for i in plan] == [
        (0, "a/1", 1),
        (1, "a/2", 1),
        (2, "a/2", 2),
        (3, "b/1", 1),
        (4, "builtin/1", 1),
    ]
    assert plan[1].text == "Alexa, ask a for news"
    assert plan[3].follow_ups == ["yes", "stop"] and plan[3].expect.keywords == ["welcome"]
    assert (plan[4].skill_id, plan[4].skill_name, plan[4].text) == ("builtin", "Built-in", "Alexa, what time is it")
    assert {i.persona_id for i in plan} == {"p"}


def test_session_repeats_run_the_script_again() -> None:
    plan = build_plan(persona(repeats=2))
    assert len(plan) == 10
    assert [i.round for i in plan] == [1] * 5 + [2] * 5
    assert [i.repeat for i in plan if i.utterance_id == "a/2"] == [1, 2, 3, 4]
    assert [i.index for i in plan] == list(range(10))


def test_shuffle_is_deterministic_for_a_seed() -> None:
    shuffled = persona(order="shuffled", repeats=3)
    first = [i.utterance_id for i in build_plan(shuffled, seed=7)]
    assert first == [i.utterance_id for i in build_plan(shuffled, seed=7)]
    seeds = {tuple(i.utterance_id for i in build_plan(shuffled, seed=s)) for s in range(20)}
    assert len(seeds) > 1
    # Same utterances, only the order differs; an utterance's repeats stay together.
    assert sorted(first) == sorted(i.utterance_id for i in build_plan(persona(repeats=3)))
    k = first.index("a/2")
    assert first[k + 1] == "a/2"


def test_cli_seed_overrides_the_scripts_seed_and_no_seed_is_still_reproducible() -> None:
    scripted = persona(order="shuffled", seed=1, repeats=4)
    ids = lambda plan: [i.utterance_id for i in plan]  # noqa: E731
    assert ids(build_plan(scripted)) == ids(build_plan(scripted, seed=1))
    assert ids(build_plan(scripted, seed=2)) == ids(build_plan(persona(order="shuffled", seed=2, repeats=4)))
    assert ids(build_plan(scripted)) != ids(build_plan(scripted, seed=2))
    unseeded = persona(order="shuffled", repeats=4)
    assert ids(build_plan(unseeded)) == ids(build_plan(unseeded))


def test_seed_does_not_reorder_an_as_written_plan() -> None:
    assert build_plan(persona(), seed=5) == build_plan(persona())


def test_plan_items_are_frozen() -> None:
    item = build_plan(persona())[0]
    with pytest.raises(ValidationError):
        item.text = "changed"  # type: ignore[misc]


def warnings(tmp_path: Path, text: str) -> list[tuple[int | None, int | None, str]]:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    check = check_file(path)
    assert check.ok, check.errors
    return [(w.place.line, w.place.column, w.message) for w in check.warnings]


HEAD = """\
persona:
  id: p
  name: P
  category: Test
skills:
  - id: fitbit
    name: Fitbit
    invocation: fitbit
    utterances:
"""


def test_lint_missing_wake_word(tmp_path: Path) -> None:
    found = warnings(tmp_path, HEAD + "      - text: ask Fitbit how I slept\n")
    assert found == [(10, 15, "no wake word; it will be spoken as 'Alexa, ask Fitbit how I slept'")]


def test_lint_duplicate_utterance(tmp_path: Path) -> None:
    found = warnings(tmp_path, HEAD + "      - text: Alexa, open Fitbit\n      - text: alexa open fitbit!\n")
    assert found == [(11, 15, "same words as utterance fitbit/1")]


def test_lint_long_utterance(tmp_path: Path) -> None:
    long = "Alexa, ask Fitbit " + " ".join(["very"] * 45) + " long"
    found = warnings(tmp_path, HEAD + f"      - text: {long}\n")
    assert found == [(10, 15, "about 17 s when spoken at 175 wpm (over 15 s)")]
    assert estimated_seconds(long, 175) == pytest.approx(49 * 60 / 175)


def test_lint_long_utterance_depends_on_rate(tmp_path: Path) -> None:
    long = "Alexa, ask Fitbit " + " ".join(["very"] * 45) + " long"
    assert warnings(tmp_path, HEAD + f"      - text: {long}\nspeech:\n  rate: 300\n") == []


def test_lint_skill_never_invoked(tmp_path: Path) -> None:
    found = warnings(tmp_path, HEAD + "      - text: Alexa, how did I sleep\n")
    assert found == [
        (
            8,
            17,
            "no utterance of skill 'fitbit' says its invocation name 'fitbit', "
            "so Alexa may not route them to the skill",
        )
    ]


def test_lint_stop_phrase_without_wake_word(tmp_path: Path) -> None:
    found = warnings(tmp_path, HEAD + "      - text: Computer, open fitbit\nspeech:\n  wake_word: Computer\n")
    assert found == [(1, 1, "stop phrase does not start with the wake word 'Computer'")]


def test_clean_script_has_no_warnings(tmp_path: Path) -> None:
    assert warnings(tmp_path, HEAD + "      - text: Alexa, open Fitbit\n") == []


def test_shipped_personas_all_validate(repo: Path) -> None:
    folder = repo / "utterances"
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    assert files, "no persona scripts shipped"
    personas = load_personas([folder])
    assert len(personas) == len(files)
    assert "demo" in {p.persona.id for p in personas}
    for p in personas:
        assert build_plan(p), p.persona.id


def test_demo_persona_is_short(repo: Path) -> None:
    [demo] = load_personas([repo / "utterances" / "demo.yaml"])
    assert len(demo.skills) == 3 and 6 <= len(build_plan(demo)) <= 10
    assert demo.session.gap_s == 2
