"""The HTML report: self-contained, and hostile strings from scripts and captures are shown as
text, never run (checked in headless Chromium where it is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.report.html import report_html
from harness.rundir.analysis import TABLES, ClockAlignment, Counts, DetectionInfo, Summary, conform

PAYLOAD = "<script>document.title='pwned';document.body.appendChild(document.createElement('h6')).id='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
SKILL = f"{PAYLOAD} \"quoted\" 'single' Ünïcødé ☃ 日本 $x$"
SNI = f"{IMG}.evil.test"


def chromium_dom(path: Path) -> str:
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
            "--dump-dom",
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
    assert "<script" not in text.lower()
    assert "<img src=x" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from elsewhere
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;" in text
    assert "Ünïcødé ☃ 日本" in text
    assert text.count("data:image/png;base64,") == 1
    # the hostile endpoint is listed at the top, before the timeline
    assert text.index("Third-party and ad/tracking") < text.index(html_escaped(SNI)) < text.index("<h2>Timeline</h2>")


def html_escaped(text: str) -> str:
    import html

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
