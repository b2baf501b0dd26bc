"""The validator: every kind of bad script gets a message at its exact line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import Place
from harness.script import (
    ScriptErrors,
    check_file,
    check_paths,
    load_persona,
    load_personas,
)
from harness.yamlsource import MAX_BYTES

VALID = """\
persona:
  id: fit
  name: Health & Fitness
  category: Health & Fitness
skills:
  - id: fitbit
    name: Fitbit
    invocation: fitbit
    utterances:
      - text: Alexa, ask Fitbit how I slept last night.
      - text: Alexa, ask Fitbit how many steps I've taken.
"""


def write(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[tuple[int | None, int | None, str]]:
    return [(e.place.line, e.place.column, e.message) for e in check_file(path).errors]


def only(path: Path) -> tuple[int | None, int | None, str]:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def test_valid_script_loads_with_defaults(tmp_path: Path) -> None:
    persona = load_persona(write(tmp_path, VALID))
    assert persona.persona.id == "fit"
    assert persona.speech.wake_word == "Alexa" and persona.speech.rate == 175
    assert persona.session.gap_s == 5.0 and persona.session.order == "as_written"
    assert [u.text for u in persona.skills[0].utterances][1] == "Alexa, ask Fitbit how many steps I've taken."


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("  name: Health & Fitness", "  name: [Health"))
    line, column, message = only(path)
    assert (line, column) == (4, 11)  # the ':' that cannot be inside the unclosed [
    assert message == "YAML syntax error: while parsing a flow sequence, did not find expected ',' or ']'"


def test_bad_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    invocation: fitbit", "   invocation: fitbit"))
    line, column, message = only(path)
    assert (line, column) == (8, 4) and "YAML syntax error" in message


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "speech:\n  rate: fast\n")
    assert only(path) == (13, 9, "speech.rate: expected a whole number, got 'fast'")


def test_yaml_boolean_where_text_expected_gets_quote_hint(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("name: Fitbit", "name: yes"))
    line, column, message = only(path)
    assert (line, column) == (7, 11)
    assert "got the boolean true" in message and "quotes" in message


def test_number_given_as_text_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "session:\n  gap_s: '2'\n")
    assert only(path) == (13, 10, "session.gap_s: expected a number, got '2'")


def test_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "speech:\n  volume: 1.5\n")
    line, column, message = only(path)
    assert (line, column) == (13, 11) and "less than or equal to 1" in message


def test_bad_choice(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "session:\n  order: random\n")
    line, column, message = only(path)
    assert (line, column) == (13, 10) and "'as_written' or 'shuffled'" in message


def test_missing_field_points_at_its_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    invocation: fitbit\n", ""))
    assert only(path) == (6, 5, "missing key 'invocation' in skills[0]")


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    utterances:", "    utterence:"))
    found = problems(path)
    assert (9, 5, "unknown key 'utterence'; did you mean 'utterances'?") in found
    assert (6, 5, "missing key 'utterances' in skills[0]") in found


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "colour: blue\n")
    line, column, message = only(path)
    assert (line, column) == (12, 1)
    assert message == "unknown key 'colour' (allowed here: persona, speech, session, skills, builtins)"


def test_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    name: Fitbit\n", "    name: Fitbit\n    name: Fitbit 2\n"))
    assert only(path) == (8, 5, "duplicate key 'name' (first at line 7)")


def test_duplicate_skill_id(tmp_path: Path) -> None:
    second = (
        "  - id: fitbit\n    name: Other\n    invocation: other\n    utterances:\n      - text: Alexa, open other\n"
    )
    path = write(tmp_path, VALID + second)
    assert only(path) == (12, 9, "duplicate skill id 'fitbit' (first at line 6)")


def test_duplicate_persona_id_across_files(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, "# the same persona again\n" + VALID, "b.yaml")
    checks = check_paths([tmp_path])
    assert checks[0].ok
    [error] = checks[1].errors
    assert (error.place.line, error.place.column) == (3, 7)
    assert error.message.startswith("duplicate persona id 'fit' (also in ")
    with pytest.raises(ScriptErrors) as caught:
        load_personas([tmp_path])
    assert [str(e) for e in caught.value.errors] == [str(error)]


def test_same_file_twice_is_not_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    assert len(load_personas([path, tmp_path, tmp_path / "." / "p.yaml"])) == 1


def test_bad_id(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("id: fitbit", "id: Fit Bit"))
    line, column, message = only(path)
    assert (line, column) == (6, 9) and "'Fit Bit' is not an id" in message


def test_builtin_is_a_reserved_skill_id(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("id: fitbit", "id: builtin"))
    line, column, message = only(path)
    assert (line, column) == (6, 9) and "reserved" in message


def test_bad_regex_is_an_error_at_the_regex(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID.replace(
            "      - text: Alexa, ask Fitbit how I slept last night.\n",
            "      - text: Alexa, ask Fitbit how I slept last night.\n"
            "        expect:\n          regex: 'slept (\\d+ hours'\n",
        ),
    )
    line, column, message = only(path)
    assert (line, column) == (12, 18)
    assert message.startswith("skills[0].utterances[0].expect.regex: regex does not compile: missing )")


def test_interest_persona_needs_a_skill_but_control_may_have_none(tmp_path: Path) -> None:
    head = VALID.split("skills:")[0]
    assert "needs at least one skill" in only(write(tmp_path, head, "a.yaml"))[2]
    control = head.replace("  category: Health & Fitness\n", "  category: none\n  control: true\n")
    persona = load_persona(write(tmp_path, control + "builtins:\n  - text: what time is it\n", "b.yaml"))
    assert persona.skills == [] and persona.persona.control


def test_skill_needs_an_utterance(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.split("      - text")[0].replace("    utterances:", "    utterances: []"))
    assert only(path) == (9, 17, "skills[0].utterances: needs at least 1 item(s)")


def test_empty_text(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace("      - text: Alexa, ask Fitbit how I slept last night.", "      - text: '  '")
    )
    assert only(path) == (10, 15, "skills[0].utterances[0].text: must not be empty")


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("id: fit\n", "id: Fit\n").replace("name: Fitbit", "nme: Fitbit") + "speech:\n  rate: 10\n"
    found = problems(write(tmp_path, text))
    assert [(line, column) for line, column, _ in found] == [(2, 7), (6, 5), (7, 5), (13, 9)]


def test_empty_file(tmp_path: Path) -> None:
    line, column, message = only(write(tmp_path, ""))
    assert (line, column) == (1, 1) and message.startswith("empty script")


def test_file_of_only_comments_is_empty(tmp_path: Path) -> None:
    assert only(write(tmp_path, "# nothing yet\n\n"))[2].startswith("empty script")


def test_top_level_list(tmp_path: Path) -> None:
    assert only(write(tmp_path, "- persona\n")) == (
        1,
        1,
        "the script: expected a mapping (key: value lines), got a list",
    )


def test_binary_file_reports_the_byte_offset(tmp_path: Path) -> None:
    path = write(tmp_path, b"persona:\n  id: a\x00b\n")
    [error] = check_file(path).errors
    assert error.place == Place(offset=16)
    assert str(error) == f"{path}: byte 16: binary file (NUL byte), not a YAML script"


def test_non_utf8_file_reports_the_byte_offset(tmp_path: Path) -> None:
    [error] = check_file(write(tmp_path, "persona:\n  name: Café\n".encode("latin-1"))).errors
    assert error.place == Place(offset=20) and "not UTF-8" in error.message


def test_byte_offset_counts_the_byte_order_mark(tmp_path: Path) -> None:
    [error] = check_file(write(tmp_path, b"\xef\xbb\xbfab: \xff\n")).errors
    assert error.place == Place(offset=7)


def test_control_character(tmp_path: Path) -> None:
    path = write(tmp_path, b"persona:\n  name: a\x07b\n")
    assert only(path) == (2, 10, "character U+0007 is not allowed in a YAML file")


def test_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: nothing is written, the size is what matters
    [error] = check_file(path).errors
    assert error.place == Place()
    assert error.message == f"file is 52.4 MB, over the {MAX_BYTES // 2**20} MB limit of a script; not read"


def test_alias_bomb_is_refused_at_the_alias(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    [error] = check_file(write(tmp_path, "\n".join(lines) + "\n")).errors
    assert (error.place.line, error.place.column) == (5, 45)
    assert error.message.startswith("alias *a3 expands to 11111 values") and "alias bomb" in error.message


def test_small_aliases_are_fine(tmp_path: Path) -> None:
    text = VALID.replace(
        "      - text: Alexa, ask Fitbit how I slept",
        "      - expect: &steps {keywords: [steps]}\n        text: Alexa, ask Fitbit how I slept",
    )
    text += "builtins:\n  - text: Alexa, how many steps is a mile\n    expect: *steps\n"
    persona = load_persona(write(tmp_path, text))
    assert persona.builtins[0].expect.keywords == ["steps"]


def test_recursive_alias(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "persona: &p\n  id: *p\n"))
    assert (2, 7, "alias *p refers to a list or mapping that contains it") in found


def test_python_tag_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("name: Fitbit", "name: !!python/object/apply:os.system ['true']"))
    line, column, message = only(path)
    assert (line, column) == (7, 11)
    assert message.startswith("tag '!!python/object/apply:os.system' is not allowed")


def test_custom_tag_is_refused(tmp_path: Path) -> None:
    assert only(write(tmp_path, VALID.replace("name: Fitbit", "name: !env FITBIT")))[:2] == (7, 11)


def test_merge_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "session: &s {gap_s: 1}\nspeech:\n  <<: *s\n")
    assert only(path) == (14, 3, "merge keys (<<) are not supported; write the keys out")


def test_non_text_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("  name: Health & Fitness\n", "  name: Health & Fitness\n  [a, b]: c\n"))
    assert only(path) == (4, 3, "a key must be a plain word, not a list, mapping or tagged value")


def test_deep_nesting(tmp_path: Path) -> None:
    text = "".join("  " * i + "k:\n" for i in range(100))
    line, column, message = only(write(tmp_path, text))
    assert (line, column) == (64, 127) and message == "nesting deeper than 64 levels"


def test_deep_flow_nesting(tmp_path: Path) -> None:
    line, column, message = only(write(tmp_path, "persona: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert line == 1 and column is not None and "nesting" in message


def test_two_documents(tmp_path: Path) -> None:
    line, column, message = only(write(tmp_path, VALID + "---\n" + VALID))
    assert (line, column) == (12, 1) and "single document" in message


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a script")
    checks = check_paths([tmp_path / "nope.yaml", tmp_path / "empty"])
    assert [str(c.errors[0]) for c in checks] == [
        f"{tmp_path / 'nope.yaml'}: no such file or folder",
        f"{tmp_path / 'empty'}: no *.yaml or *.yml scripts in this folder",
    ]


def test_folder_gives_yaml_and_yml_sorted(tmp_path: Path) -> None:
    write(tmp_path, VALID.replace("id: fit\n", "id: b\n"), "b.yml")
    write(tmp_path, VALID.replace("id: fit\n", "id: a\n"), "a.yaml")
    write(tmp_path, "not: a script", "c.txt")
    assert [p.persona.id for p in load_personas([tmp_path])] == ["a", "b"]


def test_script_errors_print_as_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("rate", "x") + "speech:\n  rate: fast\n  pitch: 3\n")
    with pytest.raises(ScriptErrors) as caught:
        load_persona(path)
    assert len(caught.value.errors) == 2
    assert (
        str(caught.value)
        == f"{path}:13:9: speech.rate: expected a whole number, got 'fast' (and 1 more problem; see `harness validate`)"
    )
    assert "\n" not in str(caught.value)


GARBAGE = [
    b"{{{{",
    b"\xff\xfe\x00\x00",
    b"- - - - -\n  - : :\n",
    b"persona: !!map\n",
    b"? ? ? ?\n",
    b"&a *a\n",
    b"persona:\n  id: *nope\n",
    b"persona: &a\n  id: &a x\n",
    b'persona: "unterminated\n',
    b"\xef\xbb\xbfpersona: {id: x, name: y, category: z, control: true}\n",
    b"%YAML 9.9\n---\na: b\n",
    b"!!python/name:os.system\n",
    b"persona: 2017-02-30\n",
    b"persona: {id: .nan, name: .inf, category: 0x1F}\n",
    b"\t\tpersona: x\n",
    b"skills: [" + b"{}, " * 3000 + b"]\n",
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_any_garbage_gives_messages_not_exceptions(tmp_path: Path, data: bytes) -> None:
    check = check_file(write(tmp_path, data))
    for error in check.errors:
        assert error.message and "\n" not in str(error)
        assert error.place.line is not None or error.place.offset is not None
    assert check.ok == (check.persona is not None)
