"""``harness run``: speak persona scripts to the speaker and log every instant.

The command imports what it uses when it runs, so that ``harness --help`` starts fast.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from harness.bench.markers import parse_target
from harness.cli.args import add_format, add_verbose, capture_target, checked, seconds, whole
from harness.defaults import default

if TYPE_CHECKING:
    from harness.bench.options import RunOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="speak persona scripts through a speaker, listen for the answers, log the timing",
        description="Speak the plan of one or more persona scripts through the output device, record each "
        "answer from the input device, and log every onset to RUN_DIR/events.jsonl. "
        "Ctrl-C stops after the current utterance; --resume RUN_DIR continues a stopped or crashed run.",
    )
    p.add_argument("scripts", nargs="*", type=Path, metavar="SCRIPT", help="persona scripts or folders of them")
    p.add_argument("--output-device", help="speaker: device index or name (see `harness devices`)")
    p.add_argument("--input-device", help="microphone for the answers (none: no listening)")
    p.add_argument("--backend", choices=default.backends, help=f"audio back end (default {default.backend})")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=default.runs_dir,
        help=f"where run directories go (default ./{default.runs_dir})",
    )
    p.add_argument("--seed", type=int, help="seed of shuffled scripts (default: each script's own)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan, its estimated duration and the checks of devices, capture target and marker; "
        "play, capture and write nothing (exit 1 when a check fails)",
    )
    p.add_argument(
        "--marker", type=checked(parse_target), metavar="HOST:PORT", help="send a UDP sync marker at each onset"
    )
    p.add_argument("--retries", type=int, help="tries after no answer (default: each script's session.retries)")
    p.add_argument("--transcribe", action="store_true", help="transcribe answers offline (pocketsphinx)")
    p.add_argument(
        "--capture", type=capture_target, metavar="SPEC", help="capture the speaker's traffic during the run (tcpdump)"
    )
    p.add_argument("--capture-device", metavar="ADDR", help="the speaker's address, to filter the capture")
    p.add_argument("--capture-filter", metavar="BPF", help="an extra tcpdump filter, e.g. 'not port 22'")
    p.add_argument("--capture-rotate-mb", type=whole(), metavar="N", help="a new capture file after N megabytes")
    p.add_argument("--capture-rotate-s", type=whole(), metavar="S", help="a new capture file after S seconds")
    p.add_argument(
        "--capture-tail",
        type=seconds(),
        metavar="S",
        help=f"keep capturing S seconds after the last answer (default {default.capture_tail_s:g}; "
        f"with --twin {default.twin_quiet_s:g})",
    )
    p.add_argument(
        "--quiet-lead",
        type=seconds(),
        metavar="S",
        help=f"with --twin: capture S seconds of background before the first utterance "
        f"(default {default.twin_quiet_s:g}: attribution learns the background from it)",
    )
    p.add_argument(
        "--device-wait",
        type=seconds(),
        default=default.device_wait_s,
        metavar="S",
        help=f"how long to wait for a lost device before stopping (default {default.device_wait_s:g})",
    )
    p.add_argument(
        "--calibration",
        type=seconds(),
        default=default.calibration_s,
        metavar="S",
        help=f"seconds of room noise measured at the start to set the threshold (default {default.calibration_s:g})",
    )
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue this run where it stopped (a --twin run starts its twin again)",
    )
    p.add_argument(
        "--twin",
        action="store_true",
        help="run against the simulated Echo: lab, twin and capture are started and stopped for you",
    )
    p.add_argument("--twin-config", type=Path, metavar="FILE", help="the twin's configuration (default: shipped)")
    add_format(p, csv=False)
    add_verbose(p)
    p.set_defaults(func=run_command, parser=p)


def run_command(args: argparse.Namespace) -> int:
    from harness.audio.probe import show_probe
    from harness.bench.options import RunOptions
    from harness.cli.console import out
    from harness.rundir.layout import RunDir
    from harness.rundir.manifest import read_manifest

    if args.resume and args.scripts:
        args.parser.error("--resume takes the scripts from the run directory; give no SCRIPT")
    if not args.resume and not args.scripts:
        args.parser.error("give at least one SCRIPT (or --resume RUN_DIR)")
    if args.twin and args.capture:
        args.parser.error("--twin runs its own capture; drop --capture")
    rotation = args.capture_filter or args.capture_rotate_mb or args.capture_rotate_s
    if rotation and not (args.capture or args.resume):
        args.parser.error("--capture-filter and --capture-rotate-* need --capture")
    if args.quiet_lead is not None and not (args.twin or args.resume):
        args.parser.error("--quiet-lead needs --twin")
    if not args.resume and not args.output_device and not args.dry_run and not args.twin:
        args.parser.error("--output-device is required")
    if args.retries is not None and args.retries < 0:
        args.parser.error("--retries must be >= 0")
    if args.format == "json" and not args.dry_run:
        args.parser.error("--format json prints a dry run's plan and checks; add --dry-run")
    show_probe(args.verbose)
    options = RunOptions(
        scripts=args.scripts,
        output_device=args.output_device,
        input_device=args.input_device,
        backend=args.backend,
        runs_dir=args.runs_dir,
        seed=args.seed,
        marker=args.marker,
        retries=args.retries,
        transcribe=args.transcribe,
        capture=args.capture,
        capture_device=args.capture_device,
        capture_filter=args.capture_filter,
        capture_rotate_mb=args.capture_rotate_mb,
        capture_rotate_s=args.capture_rotate_s,
        capture_tail_s=args.capture_tail,
        device_wait_s=args.device_wait,
        calibration_s=args.calibration,
        twin=args.twin,
        twin_config=args.twin_config,
        quiet_lead_s=args.quiet_lead,
        resume=args.resume,
    )
    if args.dry_run:
        return dry_run(options, args.format)
    if args.twin or (args.resume and read_manifest(RunDir.existing(args.resume)).settings.twin):
        from harness.twin.session import run_with_twin  # the twin is a later stage than the bench

        result = run_with_twin(options, out)
        out.print(result.describe(), markup=False, highlight=False, soft_wrap=True)
        return result.status
    from harness.bench.run import BenchRun  # imports the audio stack, which a dry run never touches

    run = BenchRun(options, out)
    run.prepare()
    return run.execute()


def dry_run(options: RunOptions, fmt: str = "table") -> int:
    """Print the plan, its duration (the same estimate as ``harness plan``) and the checks of what
    the run needs (:func:`harness.bench.preflight.preflight`); opens no stream, sends and writes
    nothing. Returns 1 when a check fails."""
    from rich.table import Table

    from harness.bench.plan import load_plan
    from harness.bench.preflight import preflight
    from harness.cli.console import out, plain, print_json
    from harness.cli.speech_cmd import ESTIMATE_NOTE, speech_seconds
    from harness.script.duration import clock_text, run_duration
    from harness.termtable import keep_names

    if options.resume:
        from harness.bench.record import RunRecord

        record = RunRecord.reopen(options.resume)
        options = options.resumed(record.run, record.manifest)
        plan = record.plan
        where = f"resume {options.resume}"
    else:
        plan = load_plan(options.scripts, options.seed)
        where = f"new run under {options.runs_dir}/"
    by_persona = [
        (s.persona, [i for i in plan.items if i.persona_id == s.persona.persona.id], s.persona.speech)
        for s in plan.scripts
    ]
    seconds = speech_seconds(by_persona, options.speech_cache)
    duration = run_duration(
        plan.items,
        plan.persona,
        lambda p, text: seconds[(p.persona.id, text)],
        listening=options.input_device is not None or options.twin,
    )
    checks = preflight(options)
    status = 0 if all(c.ok for c in checks) else 1
    if fmt == "json":
        print_json(
            {
                "run": where,
                "plan": [
                    {
                        "index": item.index,
                        "persona_id": item.persona_id,
                        "skill_name": item.skill_name,
                        "utterance_id": item.utterance_id,
                        "repeat": item.repeat,
                        "text": item.text,
                        "follow_ups": list(item.follow_ups),
                    }
                    for item in plan.items
                ],
                "estimate_s": duration.estimate_s,
                "worst_s": duration.worst_s,
                "checks": [dataclasses.asdict(c) for c in checks],
                "ok": status == 0,
            }
        )
        return status
    table = Table(title=f"plan: {len(plan.items)} utterances", show_lines=False)
    for column in ("#", "persona", "skill", "utterance", "text", "follow-ups"):
        table.add_column(column)
    for item in plan.items:
        table.add_row(
            str(item.index),
            plain(item.persona_id),
            plain(item.skill_name),
            plain(f"{item.utterance_id} #{item.repeat}"),
            plain(item.text),
            plain(" / ".join(item.follow_ups)),
        )
    out.print(keep_names(table, 1, 2, 3))
    checked = Table(title="checks", show_header=False)
    checked.add_column("ok")
    checked.add_column("what", no_wrap=True)
    checked.add_column("found", overflow="fold")
    for c in checks:
        checked.add_row(plain("ok", "green") if c.ok else plain("FAIL", "bold red"), c.what, plain(c.detail))
    out.print(checked)
    out.print(
        plain(
            f"dry run: {where}; backend {options.backend or default.backend}, "
            f"estimate {clock_text(duration.estimate_s)}, worst case {clock_text(duration.worst_s)}. "
            + ("Nothing was played, captured or written." if status == 0 else "A check failed: see above.")
        ),
        soft_wrap=True,
    )
    out.print(plain(ESTIMATE_NOTE), soft_wrap=True)
    return status
