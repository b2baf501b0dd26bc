"""What the commands print: device guidance, the audio libraries' probe noise kept off the
terminal, JSON (and CSV) for every command with a result, names kept whole on an 80-column or
piped terminal, progress bars only on a terminal, numbers for people, readable ads axes."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from harness.audio.probe import probe_messages, quiet_probe, show_probe
from harness.cli.main import main
from harness.net import synth

from conftest import require_tool

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "utterances" / "demo.yaml"
ADS = REPO / "tests" / "data" / "ads"
DEVICE = "10.0.0.2"
# names a table must never cut (the issue's `unagi-na.ama…`)
NAMES = [
    "unagi-na.amazon.com",
    "device-metrics-us.amazon.com",
    "avs-alexa-16-na.amazon.com",
    "b.scorecardresearch.com",
    "api.amazonalexa.com",
]
T0 = 1_700_000_000 * 10**9


def without_lab(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with no virtual lab and no sound server chosen."""
    env = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER", "ALSA_CONFIG_PATH", "COLUMNS")}
    env["HARNESS_LAB_DIR"] = str(tmp_path / "no-lab")
    env.update(extra)
    return env


def harness(*args: str, env: dict[str, str], stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
    )


def capture_with_names(path: Path) -> Path:
    """A capture of DEVICE opening TLS connections to every name in NAMES (by SNI)."""
    frames = []
    for i, name in enumerate(NAMES):
        for k in range(3):
            payload = synth.client_hello(name) if k == 0 else b"\x17\x03\x03\x00\x10" + bytes(16)
            packet = synth.ipv4(DEVICE, f"198.51.100.{i + 1}", 6, synth.tcp(40000 + i, 443, payload, seq=1 + 100 * k))
            frames.append(
                (T0 + (i * 3 + k) * 10**8, synth.ethernet("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800, packet))
            )
    path.write_bytes(synth.pcap_bytes(frames))
    return path


# --- device guidance -------------------------------------------------------------------------


def test_no_devices_says_what_to_do_and_keeps_the_probe_noise_off_the_terminal(tmp_path):
    env = without_lab(tmp_path)
    loud = harness("devices", "--backend", "pyaudio", "-v", env=env)
    if loud.returncode == 0:
        pytest.skip("this host has audio devices without the lab")
    if "ALSA lib" not in loud.stderr:
        pytest.skip("PortAudio printed nothing while probing here")
    quiet = harness("devices", "--backend", "pyaudio", env=env)
    assert quiet.returncode == 1 and "ALSA lib" not in quiet.stderr
    (hint,) = quiet.stderr.strip().splitlines()  # the hint alone
    assert hint.startswith("no audio devices (pyaudio): start the virtual lab with `harness lab up`")
    assert loud.returncode == 1 and hint in loud.stderr  # -v: the probe's messages, then the same hint
    as_json = harness("devices", "--backend", "pyaudio", "--format", "json", env=env)
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == [] and hint in as_json.stderr


def test_the_probe_redirect_keeps_what_a_child_writes_on_fd_2(capfd):
    """Independent of this host's sound cards: a child process writes on the inherited fd 2, as
    ALSA and JACK do inside PortAudio's initialisation."""
    child = [sys.executable, "-c", "import os; os.write(2, b'cannot find card 0\\n')"]
    show_probe(False)
    with quiet_probe():
        subprocess.run(child, check=True)
    os.write(2, b"after the probe\n")
    err = capfd.readouterr().err
    assert "cannot find card 0" not in err and "after the probe" in err
    assert "cannot find card 0" in probe_messages()
    show_probe(True)
    try:
        with quiet_probe():
            subprocess.run(child, check=True)
    finally:
        show_probe(False)
    assert "cannot find card 0" in capfd.readouterr().err


def test_a_dry_run_checks_devices_capture_and_marker_without_the_lab(tmp_path):
    done = harness(
        "run",
        str(DEMO),
        "--dry-run",
        "--format",
        "json",
        "--output-device",
        "harness_outt",
        "--capture",
        "nosuch0",
        "--marker",
        "127.0.0.1:9",
        "--runs-dir",
        str(tmp_path / "runs"),
        env=without_lab(tmp_path, HARNESS_CACHE=str(tmp_path / "cache")),
    )
    assert done.returncode == 1, done.stderr
    checks = {c["what"]: c for c in json.loads(done.stdout)["checks"]}
    assert (
        not checks["output device"]["ok"]
        and "no output device matches 'harness_outt'" in checks["output device"]["detail"]
    )
    assert "`harness lab up`" in checks["output device"]["detail"]
    assert checks["input device"]["ok"]  # none given: no listening
    assert not checks["capture"]["ok"] and "no network interface 'nosuch0'" in checks["capture"]["detail"]
    assert checks["marker"]["ok"] and "nothing sent" in checks["marker"]["detail"]
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_checks_a_local_capture_with_tcpdump(tmp_path):
    require_tool("tcpdump")
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root here")
    env = without_lab(tmp_path, HARNESS_CACHE=str(tmp_path / "cache"))
    args = ["run", str(DEMO), "--dry-run", "--format", "json", "--twin", "--runs-dir", str(tmp_path / "runs")]
    ok = harness(*args, env=env)
    assert ok.returncode == 0 and all(c["ok"] for c in json.loads(ok.stdout)["checks"])
    bad = harness(
        "run", str(DEMO), "--dry-run", "--output-device", "x", "--capture", "lo", "--capture-filter", "port", env=env
    )
    assert bad.returncode == 1 and "capture filter" in bad.stdout


@pytest.mark.lab
def test_a_dry_run_against_the_lab_names_close_devices_and_gives_plans_estimate(lab, capsys, tmp_path):
    common = [str(DEMO), "--dry-run", "--format", "json", "--runs-dir", str(tmp_path / "runs")]
    assert main(["run", *common, "--output-device", lab.output, "--input-device", lab.mic]) == 0
    good = json.loads(capsys.readouterr().out)
    assert all(c["ok"] for c in good["checks"]) and lab.output in good["checks"][0]["detail"]
    assert main(["run", *common, "--output-device", "harness_outt", "--input-device", lab.mic]) == 1
    bad = {c["what"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert "did you mean 'harness_out'" in bad["output device"]["detail"]
    assert main(["plan", str(DEMO), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert good["estimate_s"] == pytest.approx(plan["estimate_s"]) and good["worst_s"] == pytest.approx(plan["worst_s"])
    assert [i["text"] for i in good["plan"]] == [u["text"] for u in plan["utterances"] if u["index"] is not None]


@pytest.mark.lab
def test_devices_and_lab_status_print_json_and_csv(lab, capsys):
    assert main(["devices", "--format", "json"]) == 0
    names = {d["name"] for d in json.loads(capsys.readouterr().out)}
    assert {lab.output, lab.mic, lab.monitor, lab.answer_output} <= names
    assert main(["devices", "--format", "csv"]) == 0
    assert {lab.output, lab.mic} <= set(pd.read_csv(io.StringIO(capsys.readouterr().out))["name"])
    assert main(["lab", "status", "--dir", str(lab.base), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] and status["environment"] == lab.env


def test_lab_status_json_when_down(tmp_path, capsys):
    assert main(["lab", "status", "--dir", str(tmp_path / "none"), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["running"] is False


# --- JSON and CSV for every command that prints a result -------------------------------------


def test_author_and_speech_commands_print_json_and_csv(tmp_path, capsys):
    require_tool("espeak-ng")
    cache = ["--cache", str(tmp_path / "cache")]
    bad = tmp_path / "bad.yaml"
    bad.write_text("persona: {id: x}\nfoo: 1\n")
    assert main(["validate", str(DEMO), str(bad), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["scripts"] == 2
    assert {"file": str(bad), "line": 2, "column": 1, "severity": "error"}.items() <= doc["problems"][-1].items()
    assert main(["validate", str(bad), "--format", "csv"]) == 1
    assert list(pd.read_csv(io.StringIO(capsys.readouterr().out))["line"]) == [1, 1, 2]
    assert main(["plan", str(DEMO), "--format", "csv", *cache]) == 0
    plan = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert plan["speech_s"].gt(0).all() and "Alexa, play Jeopardy!" in set(plan["text"])
    assert main(["synth", str(DEMO), "--format", "json", *cache]) == 0
    synthesised = json.loads(capsys.readouterr().out)
    assert synthesised["distinct"] == len({t["wav"] for t in synthesised["texts"]}) and synthesised["audio_s"] > 0
    assert main(["voices", "--format", "json"]) == 0
    assert any(v["id"] == "gmw/en-us" for v in json.loads(capsys.readouterr().out)["voices"])
    assert main(["twin", "check", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_network_and_ads_commands_print_json_and_csv(tmp_path, capsys):
    pcap = capture_with_names(tmp_path / "names.pcap")
    assert main(["net", str(pcap), "--device", DEVICE, "--format", "json"]) == 0
    assert set(NAMES) <= {e["endpoint_id"] for e in json.loads(capsys.readouterr().out)["endpoints"]}
    assert main(["net", str(pcap), "--device", DEVICE, "--format", "csv"]) == 0
    assert set(NAMES) <= set(pd.read_csv(io.StringIO(capsys.readouterr().out))["endpoint_id"])
    assert main(["activations", str(pcap), "--device", DEVICE, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == DEVICE
    assert main(["ads", str(ADS / "bids.csv"), "--format", "json", "--resamples", "200"]) == 0
    assert json.loads(capsys.readouterr().out)["comparisons"]


def test_report_of_a_run_without_capture_prints_json(tmp_path, capsys):
    from test_report_html import write_run

    run = write_run(tmp_path / "run")
    assert main(["report", str(run.root), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"] == str(run.report) and doc["summary"]["counts"]["utterances"] == 2


def test_every_command_with_a_result_offers_json():
    """The commands whose output is a result (not a live view or a server) take --format json."""
    from harness.cli.main import build_parser

    parser = build_parser()
    kind = type(parser._subparsers._group_actions[0])  # argparse keeps subcommands only there

    def leaves(path: str, command):
        nested = [a for a in command._actions if isinstance(a, kind)]
        if not nested:
            yield path, command
        for action in nested:
            for sub_name, sub in action.choices.items():
                yield from leaves(f"{path} {sub_name}".strip(), sub)

    live = {"run": "--dry-run only", "demo": "a live run", "schema": "JSON already", "login": "a visible browser"}
    # init and add edit the campaign's manifest; `campaign status` prints it
    live |= {"init": "edits the manifest", "add": "edits the manifest", "serve": "a server"}
    for full, command in leaves("", parser):
        if full.split()[-1] not in live:
            formats = [a for a in command._actions if "--format" in a.option_strings]
            assert formats and "json" in formats[0].choices, f"{full} has no --format json"


# --- names whole at 80 columns or piped, numbers for people ----------------------------------


def test_names_stay_whole_when_piped_at_80_columns(tmp_path):
    pcap = capture_with_names(tmp_path / "names.pcap")
    done = harness("net", str(pcap), "--device", DEVICE, env=without_lab(tmp_path, COLUMNS="80"))
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert all(name in done.stdout for name in NAMES), done.stdout
    assert "…" not in done.stdout


def test_the_run_summary_shows_long_spans_and_counts_for_people():
    from test_report_html import hostile_tables

    from harness.report import summary_renderable

    summary, tables = hostile_tables()
    summary = summary.model_copy(
        update={"counts": summary.counts.model_copy(update={"background_s": 50_000.0, "endpoints": 12_345})}
    )
    console = Console(file=io.StringIO(), width=80)
    console.print(summary_renderable(summary, tables))
    text = console.file.getvalue()
    assert "50,000 s (13.9 h)" in text and "12,345" in text and "e+" not in text


# --- progress bars on a terminal only --------------------------------------------------------


def stderr_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    main_fd, child_fd = pty.openpty()
    try:
        done = harness(*args, env=env, stderr=child_fd)
        os.close(child_fd)
        chunks = []
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main_fd)
    return done.returncode, done.stdout, b"".join(chunks).decode(errors="replace")


def test_progress_is_drawn_on_a_terminal_and_never_into_piped_or_json_output(tmp_path):
    pcap = capture_with_names(tmp_path / "names.pcap")
    env = without_lab(tmp_path)
    code, out, err = stderr_on_a_terminal(["net", str(pcap), "--device", DEVICE, "--format", "json"], env)
    assert code == 0 and json.loads(out)["device"] == DEVICE
    assert "reading captures" in err
    code, out, err = stderr_on_a_terminal(["net", str(pcap), "--device", DEVICE, "--format", "json", "-q"], env)
    assert code == 0 and "reading captures" not in err
    piped = harness("net", str(pcap), "--device", DEVICE, env=env)
    assert "reading captures" not in piped.stderr + piped.stdout


# --- ads.html --------------------------------------------------------------------------------


def narrow_bids(path: Path) -> Path:
    """Bids whose CPMs of every persona lie within one decade (log axes then want minor labels)."""
    rows = ["persona,site,visit_time,bidder,cpm,currency"]
    for p, (persona, scale) in enumerate({"vanilla": 1.0, "fitness": 1.3, "dating": 0.8}.items()):
        rows += [
            f"{persona},s.example,2023-03-01T12:00:{i % 60:02d}Z,ix,{scale * (1.5 + (i * 7 + p) % 10 / 10):.3f},USD"
            for i in range(40)
        ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_ads_axes_are_plain_numbers_that_do_not_overlap_and_tables_have_human_headers(tmp_path, capsys):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from harness.ads.result import AdsResult
    from harness.report.ads import ads_report_html, distribution_figure, ratio_figure

    assert main(["ads", str(narrow_bids(tmp_path / "bids.csv")), "--control", "vanilla", "--format", "json"]) == 0
    result = AdsResult.model_validate_json(capsys.readouterr().out)
    for figure in (distribution_figure(result), ratio_figure(result.comparisons, "ratio")):
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        renderer = canvas.get_renderer()
        (axes,) = figure.axes
        labels = [t for t in axes.get_xticklabels() if t.get_text() and t.get_visible()]
        lo, hi = axes.get_xlim()
        shown = [t for t in labels if lo <= t.get_position()[0] <= hi]
        assert len(shown) >= 3, [t.get_text() for t in shown]  # a scale one can read values off
        assert all(re.fullmatch(r"[0-9]+(\.[0-9]+)?", t.get_text()) for t in shown), [t.get_text() for t in shown]
        boxes = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:], strict=False))
    page = ads_report_html(result)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", page)
    assert {"Median CPM", "Ratio of medians", "p adjusted (Holm)", "Bids, control"} <= set(headers)
    assert not [h for h in headers if "_" in h]


def test_header_words_stay_whole_in_a_narrow_table():
    from rich.console import Console
    from rich.table import Table

    from harness.termtable import keep_names

    table = Table("endpoint", "background", "utterances", "probability", "organization")
    long = "0.001 (p < 0.05 after Holm)"  # long cells make rich shrink every column
    table.add_row("unagi-na.amazon.com", long, long, long, "Amazon.com, Inc.")
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(keep_names(table, 0))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("unagi-na.amazon.com", "background", "utterances", "probability", "organization"):
        assert word in text, text


def test_each_command_is_built_alone_by_the_module_that_adds_it():
    import argparse
    import importlib

    from harness.cli.main import COMMAND_MODULES, build_parser

    def commands(parser: argparse.ArgumentParser) -> list[str]:
        return list(parser._subparsers._group_actions[0].choices)  # argparse keeps subcommands only there

    for module, names in COMMAND_MODULES.items():
        alone = argparse.ArgumentParser()
        importlib.import_module(module).register(alone.add_subparsers())
        assert tuple(commands(alone)) == names, module
        for name in names:
            assert commands(build_parser([name, "--help"])) == list(names)
    every = [n for names in COMMAND_MODULES.values() for n in names]
    assert commands(build_parser(["--version"])) == every
    assert commands(build_parser(["nosuchcommand"])) == every  # the usage error lists them all
    assert commands(build_parser(["-h", "net"])) == every  # the help of all commands
