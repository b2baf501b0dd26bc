"""What files can make the program do is bounded: deep nesting and malformed targets are one
line with the file and place, and reading a JSON array is linear in its size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import harness.cli.main as cli
from harness.ads.currency import load_rates
from harness.ads.records import file_format, records
from harness.capture import parse_capture_spec
from harness.errors import HarnessError, InputError

DEEP = 100_000
VISIT = {
    "persona": "p",
    "site": "s",
    "visit_time": 1_700_000_000,
    "bid_responses": {"u": {"bids": [{"bidder": "b", "cpm": 1.2, "currency": "USD"}]}},
}


def _ads_error(tmp_path: Path, name: str, text: str, capsys, monkeypatch) -> str:
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setattr(cli, "COMMAND_MODULES", {m: cli.COMMAND_MODULES[m] for m in ["harness.cli.ads_cmd"]})
    assert cli.main(["ads", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("deep.json", "[" * DEEP + "]" * DEEP, "deep.json:1:2: not valid JSON: nested too deeply"),
        ("deep.json", '{"a":' * DEEP + "1" + "}" * DEEP, "deep.json:1:1: not a JSON record: nested too deeply"),
        (
            "deep.jsonl",
            '{"persona": ' + "[" * DEEP + "]" * DEEP + "}\n",
            "deep.jsonl:1:1: not a JSON record: nested too deeply",
        ),
    ],
)
def test_deeply_nested_ads_input_is_one_line(tmp_path, capsys, monkeypatch, name, text, where):
    assert _ads_error(tmp_path, name, text, capsys, monkeypatch).startswith(f"harness: error: {tmp_path / where}")


def test_a_deep_record_among_good_ones_is_a_skipped_row(tmp_path):
    path = tmp_path / "bids.jsonl"
    path.write_text(json.dumps(VISIT) + "\n" + '{"persona": ' + "[" * DEEP + "]" * DEEP + "}\n")
    rows = list(records(path, path.read_text(), "jsonl"))
    assert rows[1].line == 2 and rows[1].message == "not a JSON record: nested too deeply"


def _count_operations(text: str, fmt: str, path: Path) -> int:
    """Bytecode-independent work measure: how many characters ``str.count`` scanned while reading."""
    scanned = 0
    real_count = str.count

    class Counting(str):
        def count(self, sub, start=0, end=None):  # type: ignore[override]
            nonlocal scanned
            stop = len(self) if end is None else end
            scanned += max(0, stop - start)
            return real_count(self, sub, start, stop)

    list(records(path, Counting(text), fmt))
    return scanned


def test_reading_a_json_array_is_linear_in_its_size(tmp_path):
    sizes = (2_000, 8_000)
    scanned = []
    for n in sizes:
        text = "[\n" + ",\n".join(json.dumps(VISIT) for _ in range(n)) + "\n]\n"
        path = tmp_path / f"v{n}.json"
        assert file_format(path, text) == "json"
        assert sum(1 for _ in records(path, text, "json")) == n
        scanned.append(_count_operations(text, "json", path))
    # 4x the visits: about 4x the characters scanned for line numbers (16x if quadratic).
    assert scanned[1] <= 4.5 * scanned[0]


def test_the_array_and_its_json_lines_give_the_same_lines(tmp_path):
    text = "[\n" + ",\n".join(json.dumps(VISIT) for _ in range(5)) + "\n]\n"
    path = tmp_path / "v.json"
    assert [r.line for r in records(path, text, "json")] == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("EUR: 1.1\nGBP: \x01\n", "2:6: character U+0001 is not allowed"),
        ("EUR: 1.1\nGBP: [1\n", "3:1: YAML syntax error"),
        ("EUR: " + "[" * DEEP, "1:"),
        ("EUR: !!python/object:os.system 1\n", "1:6: tag '!!python/object:os.system' is not allowed"),
    ],
)
def test_yaml_errors_in_rates_are_one_line_with_line_and_column(tmp_path, text, place):
    path = tmp_path / "rates.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_rates(path)
    assert str(caught.value).startswith(f"{path}:{place}") and "\n" not in str(caught.value)


def test_rates_from_yaml_still_load(tmp_path):
    path = tmp_path / "rates.yaml"
    path.write_text("EUR: 1.08\nGBP: '1.27'\nUSD: 1\n")
    assert load_rates(path).to_target == {"EUR": 1.08, "GBP": 1.27, "USD": 1.0}


@pytest.mark.parametrize(
    "spec",
    [
        "ssh://root@[::1/eth0",
        "ssh://[zz::1]/eth0",
        "ssh://[::1]x/eth0",
        "ssh://[1.2.3.4]/eth0",
        "ssh://[::1]:/eth0",
        "ssh://[fe80::1%e;th]/eth0",
        "ssh://root@host]/eth0",
        "ssh://[::1]:99999/eth0",
    ],
)
def test_malformed_ipv6_targets_are_refused_when_parsed(spec):
    with pytest.raises(HarnessError) as caught:
        parse_capture_spec(spec)
    assert "\n" not in str(caught.value)


def test_ipv6_targets_round_trip():
    for spec in ("ssh://root@[fd00::1]:2222/br-lan", "ssh://[fe80::1%eth0]/wlan0"):
        assert str(parse_capture_spec(spec)) == spec


def test_a_dry_run_rejects_a_malformed_target_before_anything_is_made(tmp_path, repo):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli.main",
            "run",
            str(repo / "utterances" / "demo.yaml"),
            "--dry-run",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--capture",
            "ssh://root@[::1/eth0",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("harness run: error: argument --capture: capture target")
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
