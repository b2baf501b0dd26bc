"""Answer checks: the matcher's rules on transcripts, the per-try results and counts read from a
log, and a real run against the twin with ``--transcribe`` (espeak-ng answers heard through the
virtual lab, transcribed by pocketsphinx in the bench's worker thread, then ``harness correlate``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.bench.checks import answer_counts, check_transcript, keyword_found, try_results
from harness.cli.main import main
from harness.jsonl import read_jsonl
from harness.rundir.analysis import read_analysis
from harness.rundir.events import (
    AnswerChecked,
    AnswerHeard,
    NoAnswer,
    TrySuperseded,
    TurnSkipped,
    UtteranceEnded,
    UtteranceStarted,
    events_json_schema,
)
from harness.rundir.layout import RunDir
from harness.script import Expect
from harness.twin.config import DEFAULT_CONFIG

from conftest import require_tool

DEMO = Path(__file__).resolve().parents[1] / "utterances" / "demo.yaml"


def test_keywords_ignore_case_punctuation_and_small_recogniser_slips() -> None:
    expect = Expect(keywords=["Steps"])
    assert check_transcript("you took FIVE thousand steps.", expect).result == "matched"
    assert check_transcript("five thousand step today", expect).matched_by == "keyword:Steps"  # ratio 89
    assert check_transcript("you slept seven hours", expect).result == "not_matched"  # "slept" is not "steps"
    assert check_transcript("", expect).result == "not_matched"
    # a phrase needs its words in a row
    assert keyword_found("big sky", "the big sky says".split())
    assert not keyword_found("big sky", "big and blue sky".split())
    # short words must be heard exactly: "bed" is not "red"
    assert keyword_found("red", ["red"]) and not keyword_found("red", ["bed"])


def test_regex_and_no_expect() -> None:
    expect = Expect(keywords=["thermostat"], regex=r"\bfew (clouds|showers)\b")
    verdict = check_transcript("like we have done a few clouds", expect)
    assert (verdict.result, verdict.matched_by) == ("matched", r"regex:\bfew (clouds|showers)\b")
    assert check_transcript("A FEW Showers", Expect(regex="few showers")).result == "matched"  # case-insensitive
    assert check_transcript("anything", None).result == "unchecked"
    assert check_transcript("anything", Expect()).result == "unchecked"


def _ref(plan_index: int, turn: int = 0, attempt: int = 1) -> dict:
    return {
        "plan_index": plan_index,
        "persona_id": "p",
        "skill_id": "s",
        "utterance_id": f"s/{plan_index + 1}",
        "turn": turn,
        "attempt": attempt,
    }


class _Plan:
    """Two plan items, the first with an expect."""

    def __init__(self) -> None:
        from harness.script.plan import PlanItem

        self.items = [
            PlanItem(
                index=i,
                persona_id="p",
                skill_id="s",
                skill_name="S",
                utterance_id=f"s/{i + 1}",
                text="Alexa, ask s.",
                repeat=1,
                expect=Expect(keywords=["weather"]) if i == 0 else None,
            )
            for i in range(2)
        ]


def test_results_use_the_last_try_that_was_not_superseded() -> None:
    seq = iter(range(100))
    events: list = []

    def said(plan_index: int, attempt: int, turn: int = 0) -> int:
        started = UtteranceStarted(
            **_ref(plan_index, turn, attempt),
            seq=next(seq),
            skill_name="S",
            text="x",
            audio_path="a",
            audio_sha256="0",
            duration_s=1.0,
            cache_hit=True,
            device="d",
        )
        played = dict(
            onset_wall_ns=1, end_wall_ns=2, onset_mono_ns=1, end_mono_ns=2, latency_s=0.0, device="d", sample_rate=1
        )
        ended = UtteranceEnded(
            **_ref(plan_index, turn, attempt),
            seq=next(seq),
            started_seq=started.seq,
            frames=1,
            backend="b",
            **played,
        )
        events.extend([started, ended])
        return started.seq

    def answered(started: int, plan_index: int, attempt: int, result: str) -> None:
        heard = AnswerHeard(
            **_ref(plan_index, 0, attempt),
            seq=next(seq),
            started_seq=started,
            onset_wall_ns=3,
            end_wall_ns=4,
            duration_s=1.0,
            listen_started_wall_ns=2,
            onset_index=0,
            end_index=1,
            too_long=False,
            same_as_previous=False,
            path="w.wav",
            sha256="0",
            sample_rate=16000,
        )
        check = AnswerChecked(
            **_ref(plan_index, 0, attempt),
            seq=next(seq),
            started_seq=started,
            answer_seq=heard.seq,
            result=result,
            transcript="the weather" if result == "matched" else "hello",
            matched_by="keyword:weather" if result == "matched" else "",
            keywords=["weather"],
            regex=None,
            recogniser="pocketsphinx",
            decode_s=0.1,
        )
        events.extend([heard, check])

    first = said(0, 1)
    answered(first, 0, 1, "not_matched")
    events.append(TrySuperseded(**_ref(0), seq=next(seq), started_seq=first))
    second = said(0, 2)
    answered(second, 0, 2, "matched")
    third = said(1, 1)
    events.append(
        NoAnswer(**_ref(1), seq=next(seq), started_seq=third, listen_started_wall_ns=1, waited_s=1, final=True)
    )
    events.append(TurnSkipped(**_ref(1, 1), seq=next(seq), after_turn=0, text="Thanks"))
    results = try_results(events, _Plan())  # type: ignore[arg-type]
    assert results[first].superseded and not results[first].final and results[first].result == "not_matched"
    assert results[second].final and results[second].result == "matched"
    assert results[third].result == "no_answer" and not results[third].has_expect
    counts = answer_counts(results.values(), events)
    assert (counts.utterances, counts.with_expect, counts.matched, counts.unchecked) == (2, 1, 1, 1)
    assert counts.reached_skill_rate == 1.0 and counts.superseded_tries == 1 and counts.skipped_turns == 1


def test_the_event_schema_has_the_new_events() -> None:
    names = json.dumps(events_json_schema())
    for event in ("answer_checked", "try_superseded", "turn_skipped"):
        assert f'"const": "{event}"' in names


# ----- a real run against the twin ----------------------------------------------------------------


@pytest.mark.lab
def test_a_twin_run_checks_its_answers(lab, tmp_path: Path) -> None:
    """Expects that fit what the twin says are matched, one that does not fit is not_matched,
    utterances without an expect are unchecked; the results reach the log, the analysis tables,
    summary.json and the report."""
    require_tool("espeak-ng")
    require_tool("openssl")
    data = yaml.safe_load(DEMO.read_text())
    data["session"] = {"gap_s": 1, "max_answer_s": 8, "answer_timeout_s": 6, "retries": 0}
    fitbit, big_sky, jeopardy = data["skills"]
    # Big Sky's twin answer ends "Expect light winds and a few clouds"; nothing the twin's Fitbit says is a thermostat
    big_sky["utterances"] = [
        {"text": "Alexa, open Big Sky.", "expect": {"keywords": ["clouds", "winds"]}},
        {"text": "Alexa, ask Big Sky for the weather in three hours.", "expect": {"regex": "few (clouds|winds)"}},
    ]
    fitbit["utterances"] = [{"text": "Alexa, ask Fitbit how I'm doing today.", "expect": {"keywords": ["thermostat"]}}]
    jeopardy["utterances"] = [{"text": "Alexa, play Jeopardy!"}]
    script = tmp_path / "checked.yaml"
    script.write_text(yaml.safe_dump(data))
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["network"]["device"] = "127.0.0.44"  # its own address: other loopback tests stay out of the capture
    twin_config = tmp_path / "twin.yaml"
    twin_config.write_text(yaml.safe_dump(config))
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_LAB_DIR", str(lab.base))
    try:
        args = ["run", str(script), "--twin", "--twin-config", str(twin_config), "--runs-dir", str(tmp_path / "runs")]
        status = main([*args, "--transcribe", "--quiet-lead", "3", "--capture-tail", "3"])
    finally:
        mp.undo()
    assert status == 0
    (root,) = (tmp_path / "runs").iterdir()
    run = RunDir(root)
    events = list(read_jsonl(run.events))
    answers = {e["seq"]: e for e in events if e["event"] == "answer"}
    checks = {c["utterance_id"]: c for c in events if c["event"] == "answer_checked"}
    assert len(checks) == len(answers) == 4  # every answer checked once, by its answer's seq
    assert {c["answer_seq"] for c in checks.values()} == set(answers)
    assert checks["big-sky/1"]["result"] == "matched", checks["big-sky/1"]["transcript"]
    assert checks["big-sky/1"]["matched_by"] in ("keyword:clouds", "keyword:winds")
    assert checks["big-sky/2"]["result"] == "matched", checks["big-sky/2"]["transcript"]
    assert checks["big-sky/2"]["matched_by"] == "regex:few (clouds|winds)"
    assert checks["fitbit/1"]["result"] == "not_matched" and checks["fitbit/1"]["transcript"]
    assert checks["jeopardy/1"]["result"] == "unchecked" and checks["jeopardy/1"]["turn"] == 0
    assert [e["event"] for e in events][-1] == "run_finished"  # the checks were all logged before the end

    assert main(["correlate", str(root)]) == 0
    summary, tables = read_analysis(run)
    u = tables["utterances"]
    requests = u[u["kind"] == "request"].set_index("utterance_seq")
    by_id = {c["utterance_id"]: c["started_seq"] for c in checks.values()}
    assert requests.loc[by_id["big-sky/1"], "expect_result"] == "matched"
    assert requests.loc[by_id["fitbit/1"], "expect_result"] == "not_matched"
    assert requests.loc[by_id["fitbit/1"], "transcript"] == checks["fitbit/1"]["transcript"]
    assert requests.loc[by_id["big-sky/2"], "matched_by"] == "regex:few (clouds|winds)"
    assert pd.api.types.is_string_dtype(u["transcript"]) and u["final"].dtype == bool
    assert summary.answers is not None
    assert (summary.answers.with_expect, summary.answers.matched, summary.answers.not_matched) == (3, 2, 1)
    assert main(["report", str(root)]) == 0
    html = run.report.read_text()
    assert "not matched" in html and "2 of 3" in html
