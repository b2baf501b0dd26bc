"""The HTML report: self-contained, and hostile strings from scripts and captures are shown as
text, never run (checked in headless Chromium where it is installed)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli.main import main
from harness.report import write_report
from harness.report.audio import read_answers
from harness.report.html import report_html
from harness.report.page import SCRIPT, SCRIPT_BLOCK
from harness.rundir.analysis import ClockAlignment, Counts, DetectionInfo, Summary
from harness.rundir.events import AnswerHeard, EventLog, TurnRef, UtteranceEnded, UtteranceStarted
from harness.rundir.layout import RunDir
from harness.rundir.manifest import write_manifest
from harness.rundir.tables import TABLES, conform
from harness.wav import write_wav

from conftest import test_manifest

PAYLOAD = "<script>document.title='pwned';document.body.appendChild(document.createElement('h6')).id='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
SKILL = f"{PAYLOAD} \"quoted\" 'single' Ünïcødé ☃ 日本 $x$"
SNI = f"{IMG}.evil.test"


def chromium_dom(path: Path, *flags: str) -> str:
    """The DOM Chromium builds from ``path`` after running whatever scripts it would run."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed")
    done = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--virtual-time-budget=2000",
            *flags,
            "--dump-dom" if not any(f.startswith("--screenshot") for f in flags) else "--hide-scrollbars",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def hostile_tables() -> tuple[Summary, dict[str, pd.DataFrame]]:
    """One run's analysis, as the contract defines it, with hostile names everywhere."""
    run_id = PAYLOAD
    rows = {
        "utterances": [
            {
                "run_id": run_id,
                "utterance_seq": 3,
                "kind": "request",
                "plan_index": 0,
                "turn": 0,
                "attempt": 1,
                "persona_id": PAYLOAD,
                "skill_id": "evil",
                "skill_name": SKILL,
                "utterance_id": "evil/0",
                "text": f"Alexa, open {SKILL}",
                "onset_ns": 1000 * 10**9,
                "end_ns": 1001 * 10**9,
                "onset_capture_ns": 1000_100_000_000,
                "answer_onset_ns": 1002 * 10**9,
                "answer_duration_s": 1.5,
                "superseded": False,
                "final": True,
                "transcript": f"heard {PAYLOAD}",
                "expect_result": "matched",
                "matched_by": f"keyword:{PAYLOAD}",
                "activation_id": 0,
                "activation_lag_s": 0.1,
                "activation_bytes_up": 30000,
                "endpoint_ids": [SNI, "avs-alexa-na.amazon.com"],
                "scores": [0.95, 0.99],
            }
        ],
        "activations": [
            {
                "run_id": run_id,
                "activation_id": 0,
                "onset_capture_ns": 1000_200_000_000,
                "end_capture_ns": 1001 * 10**9,
                "bytes_up": 30000,
                "bursts": 1,
                "confidence": 0.9,
                "endpoint_ids": ["avs-alexa-na.amazon.com"],
                "utterance_seq": 3,
            }
        ],
        "endpoints": [
            {
                "run_id": run_id,
                "endpoint_id": SNI,
                "named": True,
                "name_sources": ["sni"],
                "addresses": ["10.9.9.9"],
                "owner": IMG,
                "owner_source": "sni",
                "network": IMG,
                "registrable_domain": "",
                "organization": IMG,
                "party": "third_party",
                "category": "tracking",
                "ad_or_tracking": True,
                "lists": [],
                "flows": 1,
                "bytes_up": 500,
                "bytes_down": 9,
                "first_capture_ns": 1000_500_000_000,
                "last_capture_ns": 1000_600_000_000,
            },
            {
                "run_id": run_id,
                "endpoint_id": "avs-alexa-na.amazon.com",
                "named": True,
                "name_sources": ["sni"],
                "addresses": ["10.9.9.8"],
                "owner": "Amazon",
                "owner_source": "sni",
                "network": "AMAZON-02",
                "registrable_domain": "amazon.com",
                "organization": "Amazon",
                "party": "platform",
                "category": "voice",
                "ad_or_tracking": False,
                "lists": [],
                "flows": 1,
                "bytes_up": 30000,
                "bytes_down": 9,
                "first_capture_ns": 1000 * 10**9,
                "last_capture_ns": 1001 * 10**9,
            },
        ],
        "attributions": [
            {
                "run_id": run_id,
                "skill_id": "evil",
                "skill_name": SKILL,
                "endpoint_id": SNI,
                "utterances": 1,
                "contacted": 1,
                "contact_rate": 1.0,
                "background_rate": 0.05,
                "caused_rate": 0.9,
                "response_from_s": 0.0,
                "response_to_s": 2.0,
                "other_skills_rate": None,
                "p_value": 0.05,
                "p_adjusted": 0.05,
                "attributed": True,
            }
        ],
        "contacts": [
            {
                "run_id": run_id,
                "endpoint_id": SNI,
                "onset_capture_ns": 1000_500_000_000,
                "end_capture_ns": 1000_600_000_000,
                "bytes_up": 500,
                "packets": 3,
                "protocol": "tcp",
                "remote_ip": "10.9.9.9",
                "remote_port": 443,
                "local_port": 40000,
                "category": "tracking",
                "ad_or_tracking": True,
            },
            {
                "run_id": run_id,
                "endpoint_id": "avs-alexa-na.amazon.com",
                "onset_capture_ns": 1000_200_000_000,
                "end_capture_ns": 1001 * 10**9,
                "bytes_up": 30000,
                "packets": 0,
                "protocol": "tcp",
                "remote_ip": "10.9.9.8",
                "remote_port": 443,
                "local_port": 40001,
                "category": "voice",
                "ad_or_tracking": False,
            },
        ],
    }
    summary = Summary(
        run_id=run_id,
        device="10.0.0.2",
        captures=[f"capture/{IMG}.pcap"],
        counts=Counts(
            utterances=1,
            activations=1,
            utterances_with_activation=1,
            activations_without_utterance=0,
            endpoints=2,
            attributed_pairs=1,
            attributed_ad_or_tracking=1,
            background_s=60.0,
        ),
        clock=ClockAlignment(method="host", offset_s=0.0),
        activations=DetectionInfo(
            threshold_bps=1000.0, voice_endpoints=["avs-alexa-na.amazon.com"], voice_source="sni"
        ),
        warnings=[f"warning with {PAYLOAD}"],
    )
    return summary, {name: conform(name, pd.DataFrame(rows[name])) for name in TABLES}


def test_report_is_self_contained_and_escaped():
    text = report_html(*hostile_tables())
    assert text.count(SCRIPT_BLOCK) == 1  # the page's own sort and filter script, and nothing else runs
    assert "<script" not in text.replace(SCRIPT_BLOCK, "").lower()
    assert "<img src=x" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from elsewhere
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;" in text
    assert "Ünïcødé ☃ 日本" in text
    assert text.count("data:image/png;base64,") == 1
    # the hostile endpoint is listed at the top, before the timeline
    assert text.index("Third-party and ad/tracking") < text.index(html_escaped(SNI)) < text.index("<h2>Timeline</h2>")
    assert "innerHTML" not in text and "textContent" in SCRIPT


def html_escaped(text: str) -> str:
    return html.escape(text, quote=True)


def test_chromium_runs_no_injected_script(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(report_html(*hostile_tables()), encoding="utf-8")
    dom = chromium_dom(path)
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL).group(1)
    assert title == "harness report " + PAYLOAD.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert 'id="pwned"' not in dom and "<h6" not in dom
    assert "&lt;script&gt;document.title='pwned'" in dom  # shown as text
    assert "Ünïcødé ☃ 日本" in dom


def headers(text: str) -> list[str]:
    return re.findall(r"<th[^>]*>(.*?)</th>", text)


def test_headers_are_human_and_instants_readable():
    text = report_html(*hostile_tables())
    found = headers(text)
    assert {"Onset (UTC)", "Lag (s)", "Bytes up", "Answer (s)", "p adjusted (BH)"} <= set(found)
    assert not [h for h in found if "_" in h]  # no snake_case column names
    assert "1970-01-01 00:16:40.000" in text  # onset_ns 1000 s as a UTC time
    visible = re.sub(r"<[^>]*>", " ", text)
    assert "30,000" in visible and "1000000000000" not in visible  # bytes grouped, no raw nanoseconds shown
    assert 'data-v="1000000000000"' in text  # the raw value stays for sorting


def ranked_tables() -> tuple[Summary, dict[str, pd.DataFrame]]:
    """The hostile run with more endpoints tested against its skill, in no particular order."""
    summary, tables = hostile_tables()
    base_endpoint, base_pair = tables["endpoints"].iloc[0], tables["attributions"].iloc[0]
    extra = [("weak.tracker.test", "third_party", 0.3), ("strong.tracker.test", "third_party", 0.001)]
    extra += [("platform.amazon.test", "platform", 0.0001)]
    endpoints = [{**base_endpoint, "endpoint_id": e, "party": party, "ad_or_tracking": False} for e, party, _ in extra]
    pairs = [{**base_pair, "endpoint_id": e, "p_value": p, "p_adjusted": p} for e, _, p in extra]
    tables["endpoints"] = conform("endpoints", pd.concat([tables["endpoints"], pd.DataFrame(endpoints)]))
    tables["attributions"] = conform("attributions", pd.concat([tables["attributions"], pd.DataFrame(pairs)]))
    return summary, tables


def test_a_skill_section_lists_its_endpoints_by_evidence():
    text = report_html(*ranked_tables())
    section = text[text.index('<section id="skill-1">') :]
    section = section[: section.index("</section>")]
    assert html_escaped(SKILL) in section and "Alexa, open" in section
    endpoints = section[section.index("Endpoints, by evidence") :]
    order = [endpoints.index(e) for e in ("strong.tracker.test", html_escaped(SNI), "weak.tracker.test")]
    assert order == sorted(order)  # third-party by adjusted p-value: 0.001, 0.05, 0.3
    assert order[-1] < endpoints.index("platform.amazon.test")  # the platform's smaller p comes after them


def test_no_external_resources():
    text = report_html(*ranked_tables())
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//|file:)""", text, re.IGNORECASE)
    assert not re.search(r"<link|@import|url\(|<iframe|<object|<embed", text, re.IGNORECASE)
    assert re.findall(r"""href="([^"]*)\"""", text) == ["#skill-1"]


def write_run(root: Path, answers: int = 2, transcript: str = f"It is {PAYLOAD}") -> RunDir:
    """A bench run without a capture: two skills, each asked once, answers recorded as WAVs."""
    run = RunDir(root)
    run.create(run.answers)
    write_manifest(run, test_manifest(root.name))
    rate, onset = 16000, 1_700_000_000 * 10**9
    with EventLog(run.events, root.name) as log:
        for i, (skill, name) in enumerate([("weather", "Wëather ☂"), ("evil", SKILL)]):
            turn = TurnRef(plan_index=i, persona_id="p", skill_id=skill, utterance_id=f"{skill}/0")
            started = log.emit(
                UtteranceStarted(
                    **turn.fields(),
                    skill_name=name,
                    text=f"Alexa, ask {name} for today",
                    audio_path="x.wav",
                    audio_sha256="0" * 64,
                    duration_s=1.0,
                    cache_hit=True,
                    device="-",
                )
            )
            start = onset + i * 20 * 10**9
            log.emit(
                UtteranceEnded(
                    **turn.fields(),
                    started_seq=started.seq,
                    onset_wall_ns=start,
                    end_wall_ns=start + 10**9,
                    onset_mono_ns=0,
                    end_mono_ns=10**9,
                    latency_s=0.0,
                    device="-",
                    sample_rate=rate,
                    frames=rate,
                    backend="test",
                )
            )
            if i >= answers:
                continue
            wav = run.answer_wav(i, 0, 1, started.seq)
            tone = 0.3 * np.sin(np.arange(3 * rate) * 2 * np.pi * 440 / rate)
            write_wav(wav, tone, rate)
            log.emit(
                AnswerHeard(
                    **turn.fields(),
                    started_seq=started.seq,
                    onset_wall_ns=start + 2 * 10**9,
                    end_wall_ns=start + 4 * 10**9,
                    duration_s=2.0,
                    listen_started_wall_ns=start + 10**9,
                    onset_index=rate,
                    end_index=3 * rate,
                    too_long=False,
                    same_as_previous=False,
                    path=run.relative(wav),
                    sha256="0" * 64,
                    sample_rate=rate,
                    transcript=transcript,
                )
            )
    return run


def test_a_run_without_capture_gets_a_report_of_timings_and_answers(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    assert main(["report", str(run.root)]) == 0
    assert "no capture: traffic not analysed" in capsys.readouterr().out
    text = run.report.read_text(encoding="utf-8")
    assert text.count("No capture: traffic not analysed") == 1
    assert "Wëather ☂" in text and "Alexa, ask Wëather ☂ for today" in text
    assert text.count("<audio controls") == 4  # per skill and in the list of all utterances
    assert text.count("data:audio/wav;base64,") == 4
    assert html_escaped(f"It is {PAYLOAD}") in text  # the transcript, as text
    assert "<script" not in text.replace(SCRIPT_BLOCK, "").lower()
    assert not run.analysis.exists()  # nothing pretends to be a correlation


def test_audio_beyond_the_cap_is_not_embedded_and_the_report_says_so(tmp_path):
    run = write_run(tmp_path / "run")
    answers = read_answers(run, cap_bytes=150_000)  # one 2.5 s clip at 16 kHz is ~107 kB as base64
    embedded = [a for a in answers.by_seq.values() if a.audio_uri]
    assert len(answers.by_seq) == 2 and len(embedded) == 1
    assert "1 of 2 answers are not embedded" in answers.notes[0]
    from harness.correlate.run import timings_only

    path = write_report(run, tmp_path / "r.html", analysis=timings_only(run.root), audio_cap_bytes=150_000)
    text = path.read_text(encoding="utf-8")
    assert "1 of 2 answers are not embedded" in text and "answers/00001-t0-a1-s" in text


def test_chromium_renders_the_sort_script_and_fits_narrow_screens(tmp_path):
    """Nothing makes the page wider than a laptop's or a phone's screen (tables scroll in their own
    box). Headless Chromium's window is at least 500 px wide, so the page is measured in a frame of
    the screen's width; screenshots are taken too, to look at."""
    path = tmp_path / "report.html"
    text = report_html(*ranked_tables())
    path.write_text(text, encoding="utf-8")
    dom = chromium_dom(path, "--window-size=1366,900")
    assert dom.count('class="filter"') == dom.count('class="data"') > 0  # one filter box per table
    assert dom.count('class="sortable"') == len(headers(text))
    for width, height in ((1366, 900), (390, 844)):
        frame = tmp_path / f"frame-{width}.html"
        frame.write_text(
            f'<!DOCTYPE html><html><head><title>x</title></head><body style="margin:0">'
            f'<iframe id="f" src="report.html" style="width:{width}px;height:{height}px;border:0"></iframe><script>'
            'document.getElementById("f").addEventListener("load", function () {'
            '  document.title = "W" + this.contentDocument.documentElement.scrollWidth; });</script></body></html>',
            encoding="utf-8",
        )
        dom = chromium_dom(frame, "--allow-file-access-from-files", f"--window-size={width + 100},{height}")
        scroll = int(re.search(r"<title>W(\d+)</title>", dom).group(1))
        assert scroll <= width, f"the page is {scroll} px wide on a {width} px screen"
        shot = tmp_path / f"report-{width}.png"
        chromium_dom(path, f"--window-size={width},{height}", f"--screenshot={shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 1000


def test_chromium_sorts_by_a_header_click_and_filters_by_text(tmp_path):
    path = tmp_path / "report.html"
    text = report_html(*ranked_tables())
    act = """<script>
      var table = document.querySelectorAll("#skill-1 table")[1];
      var head = Array.prototype.filter.call(table.tHead.rows[0].cells, function (th) {
        return th.textContent === "p adjusted (BH)"; })[0];
      head.click(); head.click();  // twice: descending
      var order = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
      var box = document.querySelector("#skill-1 input.filter");
      box.value = "WEAK";
      box.dispatchEvent(new Event("input"));
      var shown = Array.prototype.filter.call(document.querySelectorAll("#skill-1 table")[0].tBodies[0].rows,
        function (r) { return !r.hidden; }).length;
      var box2 = document.querySelectorAll("#skill-1 input.filter")[1];
      box2.value = "tracker";
      box2.dispatchEvent(new Event("input"));
      var left = Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; }).length;
      document.title = order.join("|") + "#" + shown + "#" + left;
    </script>"""
    path.write_text(text.replace("</body>", act + "</body>"), encoding="utf-8")
    dom = chromium_dom(path)
    title = html.unescape(re.search(r"<title>(.*?)</title>", dom, re.DOTALL).group(1))
    order, shown, left = title.split("#")
    assert order.split("|") == ["weak.tracker.test", SNI, "strong.tracker.test", "platform.amazon.test"]
    assert (shown, left) == ("0", "2")  # no try says "weak"; two endpoints are trackers
