"""`harness run` without the lab: dry runs, usage errors, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli.main import main

SCRIPT = """\
persona: {id: tiny, name: Tiny, category: Test}
session: {gap_s: 0.2}
skills:
  - id: weather
    name: Weather
    invocation: weather
    utterances:
      - {text: 'Alexa, ask weather for today.', follow_ups: [Thanks]}
      - text: Alexa, ask weather about rain.
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SCRIPT)
    return path


def test_dry_run_prints_the_plan_checks_the_devices_and_writes_nothing(tmp_path: Path, script: Path) -> None:
    probe = (
        "import sys, json; from harness.cli.main import main; "
        f"rc = main(['run', {str(script)!r}, '--output-device', 'nowhere', '--input-device', 'nothing', "
        f"'--runs-dir', {str(tmp_path / 'runs')!r}, '--marker', '127.0.0.1:9', '--dry-run']); "
        "print(json.dumps({'rc': rc}))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket",
        "COLUMNS": "200",
        "HARNESS_CACHE": str(tmp_path / "cache"),
        "HARNESS_LAB_DIR": str(tmp_path / "no-lab"),
    }
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"rc": 1}, done.stderr  # no such devices
    assert "Alexa, ask weather for today." in done.stdout and "Thanks" in done.stdout
    assert "2 utterances" in done.stdout and "127.0.0.1:9 -> 127.0.0.1 (UDP; nothing sent)" in done.stdout
    assert "no output device matches 'nowhere'" in done.stdout and "no input device matches 'nothing'" in done.stdout
    assert not (tmp_path / "runs").exists()
    # the same estimate as `harness plan`: speech + gaps + answer waits, worst case with every answer stopped
    plan = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "plan", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    row = next(line for line in plan.stdout.splitlines() if line.startswith("│ tiny"))
    estimate, worst = [c.strip() for c in row.strip("│").split("│")][-2:]
    assert f"estimate {estimate}, worst case {worst}." in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["run"],
        ["run", "x.yaml"],  # no output device
        ["run", "x.yaml", "--output-device", "o", "--marker", "nohost"],
        ["run", "x.yaml", "--output-device", "o", "--retries", "-1"],
        ["run", "x.yaml", "--resume", "runs/x"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_a_bad_script_is_one_line_naming_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCRIPT.replace("session: {gap_s: 0.2}", "session: {gap_s: soon}"))
    assert main(["run", str(bad), "--output-device", "o", "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_folder_that_is_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--resume", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err
