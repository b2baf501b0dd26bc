"""`harness validate` and `harness schema`: output lines and exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.script import persona_json_schema

GOOD = """\
persona: {id: good, name: Good, category: Test}
skills:
  - id: fitbit
    name: Fitbit
    invocation: fitbit
    utterances:
      - text: Alexa, open Fitbit
"""
WARNS = GOOD.replace("id: good", "id: warns").replace("Alexa, open Fitbit", "open Fitbit")
BAD = GOOD.replace("id: good", "id: bad").replace("invocation: fitbit", "invocaton: fitbit")


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    for name, text in {"good.yaml": GOOD, "warns.yaml": WARNS, "bad.yaml": BAD}.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_valid_script_exits_0(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(scripts / "good.yaml")]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "1 script valid: 0 errors, 0 warnings" in captured.err


def test_invalid_script_exits_1_with_file_line_column(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(scripts)]) == 1
    captured = capsys.readouterr()
    bad, warns = scripts / "bad.yaml", scripts / "warns.yaml"
    assert captured.out.splitlines() == [
        f"{bad}:3:5: error: missing key 'invocation' in skills[0]",
        f"{bad}:5:5: error: unknown key 'invocaton'; did you mean 'invocation'?",
        f"{warns}:7:15: warning: no wake word; it will be spoken as 'Alexa, open Fitbit'",
    ]
    assert "1 of 3 scripts invalid: 2 errors, 1 warning" in captured.err


def test_warnings_pass_unless_strict(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(scripts / "warns.yaml")]) == 0
    assert main(["validate", "--strict", str(scripts / "warns.yaml")]) == 1
    assert main(["validate", "--quiet", str(scripts / "warns.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines
        == [f"{scripts / 'warns.yaml'}:7:15: warning: no wake word; it will be spoken as 'Alexa, open Fitbit'"] * 2
    )


def test_quiet_prints_only_errors(scripts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-q", str(scripts)]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "warning" not in captured.out
    assert captured.err == ""


def test_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().out == f"{tmp_path / 'nope.yaml'}: error: no such file or folder\n"


def test_binary_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"persona:\x00\n")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().out == f"{path}: byte 8: error: binary file (NUL byte), not a YAML script\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["validate"], ["validate", "--bogus", "x.yaml"], ["schema", "extra"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    assert "usage: harness" in capsys.readouterr().err


def test_schema_is_the_persona_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == persona_json_schema()
    assert schema["$schema"].endswith("2020-12/schema") and schema["title"] == "harness persona script"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"persona", "speech", "session", "skills", "builtins"}
    assert schema["$defs"]["SpeechSettings"]["properties"]["rate"] == {
        "default": 175,
        "description": "Speaking rate in words per minute.",
        "maximum": 450,
        "minimum": 80,
        "title": "Rate",
        "type": "integer",
    }


@pytest.mark.parametrize("of", ["events", "truth", "manifest", "summary"])
def test_schema_of_each_run_file_is_a_json_schema(of: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--of", of]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema") and schema != persona_json_schema()


def test_schema_events_is_kept_for_old_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--events"]) == 0
    from harness.rundir.events import events_json_schema

    assert json.loads(capsys.readouterr().out) == events_json_schema()


def test_schema_of_analysis_lists_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.rundir.tables import TABLE_NAMES

    assert main(["schema", "--of", "analysis"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [t["table"] for t in doc["tables"]] == list(TABLE_NAMES)
    assert all(c["dtype"] and c["description"] for t in doc["tables"] for c in t["columns"])


def test_shipped_schema_file_is_current(repo: Path) -> None:
    """The modeline of the shipped scripts points at persona.schema.json; it must match the models."""
    shipped = json.loads((repo / "persona.schema.json").read_text())
    assert shipped == persona_json_schema(), "regenerate: harness schema > persona.schema.json"


def test_installed_command_exit_statuses(repo: Path, scripts: Path) -> None:
    harness = Path(sys.executable).with_name("harness")
    if not harness.exists():
        pytest.skip("the harness command is not installed next to this Python")
    run = lambda *args: subprocess.run([str(harness), *args], capture_output=True, text=True)  # noqa: E731
    good_and_bad = run("validate", str(repo / "utterances"), str(scripts / "bad.yaml"))
    assert good_and_bad.returncode == 1 and "Traceback" not in good_and_bad.stderr
    assert good_and_bad.stdout.startswith(f"{scripts / 'bad.yaml'}:3:5: error: ")
    assert run("validate").returncode == 2


def test_shipped_folder_validates(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(repo / "utterances")]) == 0
    assert "error" not in capsys.readouterr().out
