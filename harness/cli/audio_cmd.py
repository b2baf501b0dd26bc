"""`harness lab up|down|status` and `harness devices`."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.args import add_format, add_verbose
from harness.defaults import default


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="start, stop or inspect the virtual audio lab (private PulseAudio)",
        description="The virtual lab: a private PulseAudio with sinks harness_out and "
        "speaker_answer and the input virtual_mic. `up` prints the environment to use "
        "(--format json: running, pid, folder and environment as one object; `status` exits 1 when the lab is down).",
    )
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="lab folder (default $HARNESS_LAB_DIR or $XDG_RUNTIME_DIR/harness-lab-UID)",
    )
    add_format(lab, csv=False)
    lab.set_defaults(func=_lab)

    devices = subparsers.add_parser(
        "devices",
        help="list audio devices as PortAudio sees them",
        description="List the audio devices PortAudio sees through a back end. With none, says what to do "
        "(start the virtual lab, or check the sound card) and exits 1. What ALSA and JACK print while "
        "PortAudio probes the cards is kept off the terminal unless --verbose.",
    )
    devices.add_argument("--backend", choices=default.backends, default=default.backend)
    add_format(devices)
    add_verbose(devices)
    devices.set_defaults(func=_devices)


def _lab(args: argparse.Namespace) -> int:
    from harness.audio.lab import lab_down, lab_status, lab_up, shell_exports
    from harness.cli.console import err, out, plain, print_json

    if args.action == "up":
        status = lab_up(args.dir)
        message = (
            f"lab running (pid {status.pid}) in {status.base}; devices: harness_out, speaker_answer, "
            "virtual_mic, harness_out_monitor"
        )
    elif args.action == "down":
        message = "lab stopped" if lab_down(args.dir) else "lab was not running"
        status = lab_status(args.dir)
    else:
        status = lab_status(args.dir)
        message = (
            f"lab running (pid {status.pid}) in {status.base}" if status.running else f"lab not running ({status.base})"
        )
    failed = args.action == "status" and not status.running
    if args.format == "json":
        print_json(
            {
                "running": status.running,
                "pid": status.pid,
                "base": str(status.base),
                "environment": status.environment() if status.running else {},
                "message": message,
            }
        )
        return 1 if failed else 0
    if args.action == "up":
        out.print(shell_exports(status.environment()), end="", markup=False, highlight=False, soft_wrap=True)
        err.print(plain(message), soft_wrap=True)
    elif args.action == "down":
        err.print(plain(message), soft_wrap=True)
    else:
        out.print(plain(message), soft_wrap=True)
        if status.running:
            out.print(shell_exports(status.environment()), end="", markup=False, highlight=False, soft_wrap=True)
    return 1 if failed else 0


DEVICE_COLUMNS = ("index", "name", "hostapi", "max_input_channels", "max_output_channels", "default_samplerate")


def _devices(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import pandas as pd
    from rich.table import Table

    from harness.audio import device_advice, list_devices
    from harness.audio.probe import show_probe
    from harness.cli.console import err, out, plain, print_csv, print_json
    from harness.termtable import keep_names

    show_probe(args.verbose)
    found = list_devices(args.backend)
    if args.format == "json":
        print_json([asdict(d) for d in found])
    elif args.format == "csv":
        print_csv(
            pd.DataFrame([asdict(d) for d in found], columns=[*DEVICE_COLUMNS, "is_default_input", "is_default_output"])
        )
    elif found:
        table = Table(title=f"Audio devices ({args.backend})")
        for column in ("index", "name", "host API", "in", "out", "default rate", "default"):
            table.add_column(column, justify="right" if column in ("index", "in", "out", "default rate") else "left")
        for d in found:
            marks = " ".join(m for m, on in (("input", d.is_default_input), ("output", d.is_default_output)) if on)
            table.add_row(
                str(d.index),
                plain(d.name),
                plain(d.hostapi),
                str(d.max_input_channels),
                str(d.max_output_channels),
                f"{d.default_samplerate:,.0f}",
                marks,
            )
        out.print(keep_names(table, 1))
    if not found:
        err.print(plain(f"no audio devices ({args.backend}): {device_advice()}"), soft_wrap=True)
        return 1
    return 0
