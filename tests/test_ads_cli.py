"""``harness ads`` end to end: JSON shape, formats, --strict, --runs, --report escaping."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import harness.cli.main as cli
from harness.files import sha256_file
from harness.report.page import SCRIPT_BLOCK
from harness.rundir.events import EventLog, TurnRef, UtteranceEnded, UtteranceStarted
from harness.rundir.layout import RunDir
from harness.rundir.manifest import ScriptInfo, write_manifest

from conftest import test_manifest

DATA = Path(__file__).parent / "data" / "ads"
ONSET_NS = 1_700_000_000 * 10**9


@pytest.fixture
def harness_main(monkeypatch):
    """``main`` with only this stage's commands, so other stages' state cannot break these tests."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", {m: cli.COMMAND_MODULES[m] for m in ["harness.cli.ads_cmd"]})
    return cli.main


def test_json_has_exactly_the_documented_shape(harness_main, capsys):
    assert harness_main(["ads", str(DATA / "prebid.jsonl"), "--format", "json", "--resamples", "500"]) == 0
    result = json.loads(capsys.readouterr().out)
    required = {
        "persona",
        "control",
        "n",
        "n_control",
        "median_cpm",
        "median_cpm_control",
        "ratio",
        "ratio_ci",
        "p_value",
        "p_adjusted",
        "significant",
    }
    assert {"comparisons", "warnings"} <= result.keys()
    rows = {row["persona"]: row for row in result["comparisons"]}
    assert set(rows) == {"fashion", "health"}
    for row in rows.values():
        assert required <= row.keys()
        assert row["control"] == "vanilla"
        assert len(row["ratio_ci"]) == 2 and row["ratio_ci"][0] <= row["ratio"] <= row["ratio_ci"][1]
        assert row["p_value"] <= row["p_adjusted"] <= 1
    assert rows["health"]["significant"] and rows["health"]["n"] == 24 and rows["health"]["n_control"] == 24
    assert not rows["fashion"]["significant"]
    assert result["warnings"][0] == "control persona 'vanilla': chosen by its name (pass --control to choose another)"
    assert f"{DATA / 'prebid.jsonl'}:18: persona: missing" in result["warnings"]


def test_table_and_csv_formats(harness_main, capsys):
    assert harness_main(["ads", str(DATA / "bids.csv"), "--rates", str(DATA / "rates.csv"), "--resamples", "200"]) == 0
    captured = capsys.readouterr()
    assert "health" in captured.out and "vanilla" in captured.out
    assert f"{DATA / 'bids.csv'}:15: cpm" in captured.err.replace("\n", "")
    assert harness_main(["ads", str(DATA / "bids.csv"), "--rates", str(DATA / "rates.csv"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["persona"], r["n"], r["n_control"]) for r in rows] == [("fashion", "4", "5"), ("health", "5", "5")]
    assert rows[0]["p_value"] == "" and rows[1]["significant"] == "True"


def test_strict_exits_1_with_the_file_and_line(harness_main, capsys):
    assert harness_main(["ads", str(DATA / "prebid.jsonl"), "--strict"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"harness: error: {DATA / 'prebid.jsonl'}:13: not a JSON record: Expecting ',' delimiter (column 66)"


def test_control_choice_and_its_errors(harness_main, capsys):
    assert harness_main(["ads", str(DATA / "prebid.jsonl"), "--control", "fashion", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {row["persona"] for row in result["comparisons"]} == {"health", "vanilla"}
    assert result["warnings"][0] == "control persona 'fashion': given with --control"
    assert harness_main(["ads", str(DATA / "prebid.jsonl"), "--control", "nobody"]) == 1
    assert "control persona 'nobody' has no data (personas: fashion, health, vanilla)" in capsys.readouterr().err
    assert harness_main(["ads", str(DATA / "audio_ads.jsonl")]) == 1
    assert "no control persona: pass --control PERSONA (personas: fashion)" in capsys.readouterr().err


def test_usage_errors_exit_2(harness_main):
    for argv in (["ads"], ["ads", "x.csv", "--alpha", "2"], ["ads", "x.csv", "--currency", "dollars"]):
        with pytest.raises(SystemExit) as caught:
            harness_main(argv)
        assert caught.value.code == 2


def test_enrichment_of_audio_ads_and_interests(harness_main, capsys):
    files = [str(DATA / name) for name in ("audio_ads.csv", "interests.csv")]
    assert harness_main(["ads", *files, "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["comparisons"] == []
    health = {(r["dataset"], r["category"]): r for r in result["enrichment"] if r["persona"] == "health"}
    row = health[("audio_ads", "health")]
    assert (row["count"], row["total"], row["count_control"], row["total_control"]) == (4, 5, 0, 6)
    assert row["p_value"] == pytest.approx(5 / 330)  # only the observed table is as extreme
    assert row["odds_ratio"] is None and row["p_adjusted"] >= row["p_value"]
    assert health[("interests", "Health")]["count"] == 3


def _write_bids(path: Path, rows: list[tuple[str, int, float]]) -> None:
    lines = ["persona,site,visit_time,bidder,cpm,currency"]
    lines += [f"{persona},s.example,{t_ns / 1e9:.3f},b,{cpm:.4f},USD" for persona, t_ns, cpm in rows]
    path.write_text("\n".join(lines) + "\n")


def _write_run(folder: Path, persona: str, onset_ns: int, control: bool) -> None:
    """A run directory as the bench writes it: the script copy, the manifest and the typed log."""
    run = RunDir(folder)
    run.create(run.scripts)
    copy = run.script_copy(1, Path(f"{persona}.yaml"))
    copy.write_text(
        f"persona:\n  id: {persona}\n  name: X\n  category: Test\n  control: {str(control).lower()}\n"
        "builtins:\n  - text: Alexa, hi\n"
    )
    script = ScriptInfo(
        path=run.relative(copy), source=copy.name, sha256=sha256_file(copy), persona_id=persona, seed=None
    )
    write_manifest(run, test_manifest(folder.name, scripts=[script]))
    turn = TurnRef(plan_index=0, persona_id=persona, skill_id="builtin", utterance_id="builtin/1")
    with EventLog(run.events, folder.name) as log:
        started = log.emit(
            UtteranceStarted(
                **turn.fields(),
                skill_name="Built-in",
                text="Alexa, hi",
                audio_path="x.wav",
                audio_sha256="0" * 64,
                duration_s=1.0,
                cache_hit=True,
                device="-",
            )
        )
        log.emit(
            UtteranceEnded(
                **turn.fields(),
                started_seq=started.seq,
                onset_wall_ns=onset_ns,
                end_wall_ns=onset_ns + 10**9,
                onset_mono_ns=0,
                end_mono_ns=10**9,
                latency_s=0.0,
                device="-",
                sample_rate=22050,
                frames=22050,
                backend="test",
            )
        )
        log.emit(
            UtteranceStarted(
                **turn.retried().fields(),
                skill_name="Built-in",
                text="Alexa, hi",
                audio_path="x.wav",
                audio_sha256="0" * 64,
                duration_s=1.0,
                cache_hit=True,
                device="-",
            )
        )  # a try cut by a crash


def test_runs_give_the_control_and_a_before_after_split(harness_main, capsys, tmp_path):
    rng = np.random.default_rng(17)
    hour = 3600 * 10**9
    rows = [("idle", ONSET_NS + (i - 40) * hour, c) for i, c in enumerate(rng.lognormal(0, 0.7, 80))]
    rows += [("talker", ONSET_NS - (i + 1) * hour, c) for i, c in enumerate(rng.lognormal(0, 0.7, 60))]
    rows += [("talker", ONSET_NS + i * hour, 30 * c) for i, c in enumerate(rng.lognormal(0, 0.7, 60))]
    _write_bids(tmp_path / "bids.csv", rows)
    _write_run(tmp_path / "run-idle", "idle", ONSET_NS, control=True)
    _write_run(tmp_path / "run-talker", "talker", ONSET_NS, control=False)
    argv = [
        "ads",
        str(tmp_path / "bids.csv"),
        "--format",
        "json",
        "--runs",
        str(tmp_path / "run-idle"),
        str(tmp_path / "run-talker"),
    ]
    assert harness_main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["control"] == "idle" and result["control_source"] == "run logs"
    assert "marked control in the run logs" in result["warnings"][0]
    split = {row["persona"]: row for row in result["before_after"]}
    talker = split["talker"]
    assert (talker["n_before"], talker["n_after"], talker["first_utterance_ns"]) == (60, 60, ONSET_NS)
    assert talker["significant"] and talker["ratio"] == pytest.approx(30, rel=0.25)
    assert not split["idle"]["significant"] and (split["idle"]["n_before"], split["idle"]["n_after"]) == (40, 40)


def test_a_folder_that_is_not_a_run_is_an_error(harness_main, capsys, tmp_path):
    assert harness_main(["ads", str(DATA / "prebid.jsonl"), "--runs", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith("manifest.json: no manifest: not a run directory")


def test_report_is_offline_and_escapes_persona_names(harness_main, capsys, tmp_path):
    evil = "<script>alert(1)</script>"
    rng = np.random.default_rng(1)
    rows = [("vanilla", 10**18 + i, c) for i, c in enumerate(rng.lognormal(0, 1, 20))]
    rows += [(evil, 10**18 + i, c) for i, c in enumerate(rng.lognormal(1, 1, 20))]
    rows += [("cost$ $\\frac{1}{0}$", 10**18 + i, c) for i, c in enumerate(rng.lognormal(0, 1, 20))]
    _write_bids(tmp_path / "bids.csv", rows)
    report = tmp_path / "out" / "ads.html"
    assert harness_main(["ads", str(tmp_path / "bids.csv"), "--report", str(report), "--format", "json"]) == 0
    capsys.readouterr()
    page = report.read_text()
    assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the one script is the report's own sort-and-filter block
    assert "<script" not in page.replace(SCRIPT_BLOCK, "").lower() and "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") == 2
    assert list(report.parent.iterdir()) == [report]  # written by rename, no temporary left
