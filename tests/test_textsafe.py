"""Names on the way out: CSV cells a spreadsheet would run are quoted; control characters reach
no terminal (tables, warnings, errors, the live view, the run summary)."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table
from test_report_html import SNI, hostile_tables

import harness.cli.main as cli
from harness.bench.view import RunView
from harness.cli.console import _InertConsole, plain
from harness.report.terminal import summary_renderable
from harness.textsafe import csv_cell, csv_safe_frame, csv_safe_row, terminal_text

OSC_TITLE = "\x1b]0;pwned\x07"
OSC_LINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
CONCEALED = "\x1b[8mhidden\x1b[0m"
CONTROL = "[/bold]\x1b[2Jvanilla"  # markup and a screen clear


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_like_cells_get_a_quote(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["a=b", "", "amazon.com", 3, -1.5, None, "'=already"])
def test_other_cells_are_unchanged(value):
    assert csv_cell(value) == value


def test_a_frame_keeps_numbers_and_quotes_text():
    frame = pd.DataFrame({"endpoint": ["=cmd|' /C calc'!A0", "ok.example", None], "delta": [-1.5, 2.0, float("nan")]})
    text = csv_safe_frame(frame).to_csv(index=False)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["endpoint"] for r in rows] == ["'=cmd|' /C calc'!A0", "ok.example", ""]
    assert [r["delta"] for r in rows] == ["-1.5", "2.0", ""]
    assert frame.loc[0, "endpoint"].startswith("=")  # the caller's frame is not changed
    assert csv_safe_row({"persona": "-x", "n": -3}) == {"persona": "'-x", "n": -3}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (OSC_TITLE, "\\x1b]0;pwned\\x07"),
        ("a\x9b31mb", "a\\x9b31mb"),
        ("moc.\u202eevil", "moc.\\u202eevil"),
        ("two\nlines", "two\\x0alines"),
        ("ü 東京 café", "ü 東京 café"),
    ],
)
def test_control_characters_are_shown_inert(text, shown):
    assert terminal_text(text) == shown


def _rendered(renderable) -> str:
    console = _InertConsole(file=io.StringIO(), force_terminal=True, width=200, color_system="standard")
    console.print(renderable)
    return console.file.getvalue()


def test_the_console_shows_any_cell_inert_even_one_not_made_with_plain():
    table = Table("name")
    table.add_row(OSC_LINK)
    table.add_row(plain(OSC_TITLE))
    shown = _rendered(table)
    assert "\x1b]" not in shown and "\x07" not in shown
    assert "\\x1b]8;;https://evil.example/" in shown and "\\x1b]0;pwned\\x07" in shown


def _ads_main(monkeypatch, argv):
    monkeypatch.setattr(cli, "COMMAND_MODULES", {m: cli.COMMAND_MODULES[m] for m in ["harness.cli.ads_cmd"]})
    return cli.main(argv)


def _hostile_bids(tmp_path):
    lines = []
    for persona, base in ((CONTROL, 1.0), ('=HYPERLINK("http://evil")', 2.0), (f"pet{OSC_TITLE}", 3.0)):
        for i in range(6):
            lines.append(
                {
                    "persona": persona,
                    "site": "s",
                    "bidder": f"@b{CONCEALED}",
                    "cpm": base + i / 10,
                    "currency": "USD",
                    "visit_time": 1_700_000_000 + i,
                }
            )
    path = tmp_path / "bids.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_ads_csv_quotes_formula_names(tmp_path, monkeypatch, capsys):
    bids = _hostile_bids(tmp_path)
    assert (
        _ads_main(
            monkeypatch,
            ["ads", str(bids), "--control", CONTROL, "--format", "csv", "--min-bidder-n", "2", "--resamples", "100"],
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["persona"] for r in rows} >= {'\'=HYPERLINK("http://evil")'}
    assert all(not r[key].startswith(("=", "+", "-", "@")) for r in rows for key in ("persona", "bidder", "control"))


def test_ads_tables_and_warnings_reach_the_terminal_inert(tmp_path, monkeypatch, capsys):
    bids = _hostile_bids(tmp_path)
    assert _ads_main(monkeypatch, ["ads", str(bids), "--control", CONTROL, "--resamples", "100"]) == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream and "\x07" not in stream
    assert "pet\\x1b]0;pw" in captured.out  # the rest may be folded onto the next line
    assert "[/bold]\\x1b[2Jvanilla" in captured.err  # a warning quoting a name: neither markup nor a control


def test_error_lines_are_one_inert_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / f"x{OSC_TITLE}\n.jsonl"
    path.write_text("{\n")
    assert _ads_main(monkeypatch, ["ads", str(path), "--strict"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\\x1b]0;pwned" in err


def test_the_live_view_and_its_plain_lines_show_names_inert():
    from harness.script import PlanItem

    item = PlanItem.model_construct(
        index=0,
        persona_id=f"p{OSC_TITLE}",
        utterance_id="u",
        repeat=1,
        skill_name=f"s{CONCEALED}",
        text=f"Alexa, {OSC_LINK}",
    )
    plain_console = _InertConsole(file=io.StringIO(), width=200)
    view = RunView(plain_console, 1, 0, {0: 3.0})
    view.item(item, "name")
    view.answer(f"answer {CONCEALED}")
    assert "\x1b" not in plain_console.file.getvalue() and "\\x1b]0;pwned" in plain_console.file.getvalue()
    live = Console(file=io.StringIO(), force_terminal=True, width=200)  # a plain rich console: the view's own escaping
    view = RunView(live, 1, 0, {0: 3.0})
    with view:
        view.item(item, f"n{OSC_TITLE}")
        view.answer(f"answer {OSC_LINK}")
    shown = live.file.getvalue()
    assert "\x1b]" not in shown and "\x07" not in shown and "\\x1b[8mhidden" in shown


def test_the_run_summary_shows_captured_names_inert():
    summary, tables = hostile_tables()
    summary = summary.model_copy(update={"run_id": f"r{OSC_TITLE}", "warnings": [f"odd name {CONCEALED}"]})
    for name in ("endpoints", "attributions", "contacts"):
        tables[name]["endpoint_id"] = tables[name]["endpoint_id"].replace(SNI, OSC_LINK)
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    console.print(summary_renderable(summary, tables))
    shown = console.file.getvalue()
    assert "\x1b]" not in shown and "\x07" not in shown
    assert "\\x1b]8;;https://evil.example/" in shown and "\\x1b[8mhidden" in shown
