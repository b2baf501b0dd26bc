"""The campaign's outputs: the study's tables as CSV and one offline HTML report.

The page reuses the run report's page and table helpers (every cell escaped, sortable,
filterable without any network access) and the ads stage's section for the bids.
"""

from __future__ import annotations

import pandas as pd

from harness.campaign.manifest import CampaignDir
from harness.campaign.status import CampaignStatus
from harness.campaign.study import Study
from harness.files import PRIVATE_FILE, atomic_write_text
from harness.report.ads import ads_section_html
from harness.report.page import page
from harness.report.tables import esc, table
from harness.textsafe import csv_safe_frame


def _csv(frame: pd.DataFrame) -> str:
    lists = {
        c: frame[c].map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v)
        for c in frame.columns
        if frame[c].dtype == object
    }
    return csv_safe_frame(frame.assign(**lists)).to_csv(index=False)


def write_tables(folder: CampaignDir, result: Study) -> list[str]:
    """Every table of the study as ``tables/<name>.csv`` (private, atomic)."""
    written = []
    for name, frame in result.tables().items():
        path = folder.tables / f"{name}.csv"
        atomic_write_text(path, _csv(frame), PRIVATE_FILE)
        written.append(str(path))
    return written


def _status_frame(status: CampaignStatus) -> pd.DataFrame:
    rows = []
    for p in status.personas:
        rows.append(
            {
                "Persona": p.persona + (" (control)" if p.control else ""),
                "Runs": len(p.runs),
                "Hours captured": p.capture_hours,
                "Spoken": p.spoken,
                "Answered": p.answered,
                "Verified": "-" if p.verified is None else p.verified,
                "Gaps": [f"{g.kind}: {g.hours:.2f} h" for g in p.gaps],
                "Failures": p.failures,
            }
        )
    return pd.DataFrame(rows)


def _section(title: str, frame: pd.DataFrame, note: str = "") -> str:
    body = table(frame, list(frame.columns)) if len(frame) else "<p>(none)</p>"
    return f"<h2>{esc(title)}</h2>" + (f"<p>{esc(note)}</p>" if note else "") + body


def report_html(status: CampaignStatus, result: Study) -> str:
    third = result.third_parties
    summary = (
        third.groupby("persona")
        .agg(
            third_parties=("organization", "nunique"),
            ad_or_tracking=("ad_or_tracking", "sum"),
            not_in_control=("in_control", lambda s: int((~s.astype(bool)).sum())),
        )
        .reset_index()
        if len(third)
        else pd.DataFrame()
    )
    parts = [
        f"<h1>Campaign {esc(status.name)}</h1>",
        f"<p>Control: {esc(status.control or '-')}; {len(status.personas)} persona(s). Gaps are periods longer "
        f"than {status.gap_threshold_s:g} s without capture, or with utterances but no answer.</p>",
        _section("Personas", _status_frame(status)),
        _section(
            "Organisations reached, per persona and skill",
            result.organisations,
            "Attributed endpoints grouped by organisation. Evidence: tries with a contact; p: the smallest "
            "adjusted attribution p of the row times the number of tests folded into it (capped at 1).",
        ),
        _section("Third parties per persona against the control", summary),
        _section("Third-party organisations", third),
        _section("Data flows (skill, domain, party, organisation; PoliCheck entity and data type)", result.data_flows),
    ]
    if result.bids is not None:
        parts.append(ads_section_html(result.bids))
    parts.append(_section("Bids of sync partners against the other bidders", result.partners))
    if result.warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{esc(w)}</li>" for w in result.warnings) + "</ul>")
    return page(f"Campaign {status.name}", "\n".join(parts))


def write_report(folder: CampaignDir, status: CampaignStatus, result: Study) -> str:
    atomic_write_text(folder.report, report_html(status, result), PRIVATE_FILE)
    return str(folder.report)
