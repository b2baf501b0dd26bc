"""`harness lab up|down|status` and `harness devices`."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.defaults import default


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="start, stop or inspect the virtual audio lab (private PulseAudio)",
        description="The virtual lab: a private PulseAudio with sinks harness_out and "
        "speaker_answer and the input virtual_mic. `up` prints the environment to use.",
    )
    lab.add_argument("action", choices=["up", "down", "status"])
    lab.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="lab folder (default $HARNESS_LAB_DIR or $XDG_RUNTIME_DIR/harness-lab-UID)",
    )
    lab.set_defaults(func=_lab)

    devices = subparsers.add_parser("devices", help="list audio devices as PortAudio sees them")
    devices.add_argument("--backend", choices=default.backends, default=default.backend)
    devices.set_defaults(func=_devices)


def _lab(args: argparse.Namespace) -> int:
    from harness.audio.lab import lab_down, lab_status, lab_up, shell_exports
    from harness.cli.console import err, out

    if args.action == "up":
        status = lab_up(args.dir)
        out.print(shell_exports(status.environment()), end="", markup=False, highlight=False, soft_wrap=True)
        err.print(
            f"lab running (pid {status.pid}) in {status.base}; devices: harness_out, speaker_answer, "
            "virtual_mic, harness_out_monitor",
            markup=False,
            soft_wrap=True,
        )
        return 0
    if args.action == "down":
        stopped = lab_down(args.dir)
        err.print("lab stopped" if stopped else "lab was not running", markup=False)
        return 0
    status = lab_status(args.dir)
    if not status.running:
        out.print(f"lab not running ({status.base})", markup=False, soft_wrap=True)
        return 1
    out.print(f"lab running (pid {status.pid}) in {status.base}", markup=False, soft_wrap=True)
    out.print(shell_exports(status.environment()), end="", markup=False, highlight=False, soft_wrap=True)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.audio import list_devices
    from harness.cli.console import out

    table = Table(title=f"Audio devices ({args.backend})")
    for column in ("index", "name", "host API", "in", "out", "default rate", "default"):
        table.add_column(
            column, justify="right" if column in ("index", "in", "out", "default rate") else "left", overflow="fold"
        )
    for d in list_devices(args.backend):
        marks = " ".join(m for m, on in (("input", d.is_default_input), ("output", d.is_default_output)) if on)
        table.add_row(
            str(d.index),
            d.name,
            d.hostapi,
            str(d.max_input_channels),
            str(d.max_output_channels),
            f"{d.default_samplerate:g}",
            marks,
        )
    out.print(table)
    return 0
