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
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--virtual-time-budget=2000", "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def hostile_tables() -> tuple[dict, dict[str, pd.DataFrame]]:
    utterances = pd.DataFrame(
        [{
            "persona_id": PAYLOAD, "skill_id": "evil", "skill_name": SKILL, "utterance_id": "evil/0", "plan_index": 0,
            "turn": 0, "attempt": 1, "text": f"Alexa, open {SKILL}", "onset": 1000.0, "end": 1001.0,
            "onset_capture": 1000.1, "answer_onset": 1002.0, "answer_duration_s": 1.5, "activation": True,
            "activation_onset": 1000.2, "activation_lag_s": 0.1, "activation_bytes_up": 30000,
            "endpoints": [SNI, "avs-alexa-na.amazon.com"], "scores": [0.95, 0.99],
        }]
    )  # fmt: skip
    endpoints = pd.DataFrame(
        [{
            "skill_id": "evil", "skill_name": SKILL, "endpoint": SNI, "registrable_domain": None, "organization": IMG,
            "party": "third_party", "category": "tracking", "ad_or_tracking": True, "utterances": 1, "contacted": 1,
            "contact_rate": 1.0, "background_rate": 0.05, "other_skills_rate": None, "p_value": 0.05,
            "p_adjusted": 0.05, "attributed": True,
        }]
    )  # fmt: skip
    activations = pd.DataFrame([{"onset": 1000.2, "end": 1001.0, "bytes_up": 30000, "bursts": 1, "endpoints": [SNI], "utterance": 0}])
    contacts = pd.DataFrame(
        [
            {"endpoint": SNI, "onset": 1000.5, "end": 1000.6, "bytes_up": 500, "packets": 3, "category": "tracking", "ad_or_tracking": True},
            {"endpoint": "avs-alexa-na.amazon.com", "onset": 1000.2, "end": 1001.0, "bytes_up": 30000, "packets": 0, "category": "voice", "ad_or_tracking": False},
        ]
    )  # fmt: skip
    summary = {
        "run_id": PAYLOAD, "device": "10.0.0.2", "captures": [f"capture/{IMG}.pcap"],
        "counts": {"utterances": 1, "activations": 1}, "clock": {"method": "host", "offset_s": 0.0, "drift_ppm": 0.0},
        "warnings": [f"warning with {PAYLOAD}"],
    }  # fmt: skip
    return summary, {"utterances": utterances, "endpoints": endpoints, "activations": activations, "contacts": contacts}


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
