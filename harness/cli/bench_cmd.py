"""``harness run``: speak persona scripts to the speaker and log every instant."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from harness.bench.markers import parse_target
from harness.bench.options import RunOptions
from harness.bench.plan import load_plan
from harness.cli.args import capture_target, seconds
from harness.cli.console import out
from harness.script import estimated_seconds




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
    p.add_argument("--backend", choices=["sounddevice", "pyaudio"], help="audio back end (default sounddevice)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run directories go (default ./runs)")
    p.add_argument("--seed", type=int, help="seed of shuffled scripts (default: each script's own)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and what would be done; touch no device")
    p.add_argument("--marker", type=parse_target, metavar="HOST:PORT", help="send a UDP sync marker at each onset")
    p.add_argument("--retries", type=int, help="tries after no answer (default: each script's session.retries)")
    p.add_argument("--transcribe", action="store_true", help="transcribe answers offline (pocketsphinx)")
    p.add_argument("--capture", type=capture_target, metavar="SPEC",
                   help="capture the speaker's traffic during the run (tcpdump)")
    p.add_argument("--capture-device", metavar="ADDR", help="the speaker's address, to filter the capture")
    p.add_argument("--capture-tail", type=seconds(), default=2.0, metavar="S",
                   help="keep capturing S seconds after the last answer (default 2)")  # fmt: skip
    p.add_argument("--quiet-lead", type=seconds(), default=0.0, metavar="S",
                   help="with --twin: capture S seconds of background before the first utterance (default 0)")  # fmt: skip
    p.add_argument("--device-wait", type=seconds(), default=60.0, metavar="S",
                   help="how long to wait for a lost device before stopping (default 60)")  # fmt: skip
    p.add_argument("--calibration", type=seconds(), default=2.0, metavar="S",
                   help="seconds of room noise measured at the start to set the threshold (default 2)")  # fmt: skip
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run where it stopped")
    p.add_argument("--twin", action="store_true",
                   help="run against the simulated Echo: lab, twin and capture are started and stopped for you")
    p.add_argument("--twin-config", type=Path, metavar="FILE", help="the twin's configuration (default: shipped)")
    p.set_defaults(func=run_command, parser=p)


def run_command(args: argparse.Namespace) -> int:
    if args.resume and args.scripts:
        args.parser.error("--resume takes the scripts from the run directory; give no SCRIPT")
    if not args.resume and not args.scripts:
        args.parser.error("give at least one SCRIPT (or --resume RUN_DIR)")
    if args.twin and (args.resume or args.capture):
        args.parser.error("--twin starts a new run with its own capture; drop --resume/--capture")
    if args.quiet_lead and not args.twin:
        args.parser.error("--quiet-lead needs --twin")
    if not args.resume and not args.output_device and not args.dry_run and not args.twin:
        args.parser.error("--output-device is required")
    if args.retries is not None and args.retries < 0:
        args.parser.error("--retries must be >= 0")
    options = RunOptions(
        scripts=args.scripts, output_device=args.output_device, input_device=args.input_device,
        backend=args.backend, runs_dir=args.runs_dir, seed=args.seed, marker=args.marker, retries=args.retries,
        transcribe=args.transcribe, capture=args.capture, capture_device=args.capture_device,
        capture_tail_s=args.capture_tail, device_wait_s=args.device_wait, calibration_s=args.calibration,
        resume=args.resume,
    )  # fmt: skip
    if args.dry_run:
        return dry_run(options)
    if args.twin:
        from harness.twin.session import run_with_twin  # the twin is a later stage than the bench

        result = run_with_twin(options, out, args.twin_config, args.quiet_lead)
        out.print(result.describe(), markup=False, highlight=False, soft_wrap=True)
        return result.status
    from harness.bench.run import BenchRun  # imports the audio stack, which a dry run never touches

    run = BenchRun(options, out)
    run.prepare()
    return run.execute()


def dry_run(options: RunOptions) -> int:
    """Print the plan and the run's settings; opens no device and writes nothing."""
    if options.resume:
        from harness.bench.manifest import read_manifest

        manifest = read_manifest(options.resume)
        plan = load_plan([options.resume / s.path for s in manifest.scripts], manifest.scripts[0].seed)
        where = f"resume {options.resume}"
    else:
        plan = load_plan(options.scripts, options.seed)
        where = f"new run under {options.runs_dir}/"
    table = Table(title=f"plan: {len(plan.items)} utterances", show_lines=False)
    for column in ("#", "persona", "skill", "utterance", "text", "follow-ups"):
        table.add_column(column)
    seconds = 0.0
    for item in plan.items:
        persona = plan.persona(item)
        table.add_row(str(item.index), item.persona_id, item.skill_name, f"{item.utterance_id} #{item.repeat}",
                      item.text, " / ".join(item.follow_ups))  # fmt: skip
        spoken = [item.text, *item.follow_ups]
        seconds += sum(estimated_seconds(t, persona.speech.rate) for t in spoken) + persona.session.gap_s
        if options.input_device:
            seconds += len(spoken) * persona.session.answer_timeout_s
    out.print(table)
    marker = f"{options.marker[0]}:{options.marker[1]}" if options.marker else "none"
    output = options.output_device or ("(from the run)" if options.resume else "not given")
    out.print(
        f"dry run: {where}; output {output}, "
        f"input {options.input_device or 'none (no listening)'}, backend {options.backend or 'sounddevice'}, "
        f"markers {marker}, capture {options.capture or 'none'}; "
        f"about {seconds / 60:.1f} min at most (speech + gaps + answer waits). Nothing was played or written.",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    return 0
