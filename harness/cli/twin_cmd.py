"""``harness twin``: the simulated Echo; ``harness demo``: the demo persona through it, end to end."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.args import add_format, seconds
from harness.defaults import default

DEMO_SCRIPT = Path("utterances") / "demo.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "twin",
        help="a simulated Echo on loopback and the virtual lab (hears, answers, sends traffic)",
        description="A digital twin of the bench's Echo: it hears the bench speaker through the virtual lab, "
        "answers through speaker_answer and talks to a loopback Internet; it writes truth.jsonl.",
    )
    sub = p.add_subparsers(dest="twin_command", metavar="ACTION")
    sub.required = True
    serve = sub.add_parser("serve", help="run the twin until Ctrl-C or SIGTERM (prints 'twin ready' once listening)")
    serve.add_argument(
        "scripts", nargs="+", type=Path, metavar="SCRIPT", help="persona scripts whose skills are enabled"
    )
    serve.add_argument("--truth", type=Path, required=True, metavar="FILE", help="where to append the truth records")
    serve.add_argument("--config", type=Path, metavar="FILE", help="twin configuration (default: the shipped one)")
    serve.add_argument(
        "--synthetic-capture",
        type=Path,
        metavar="PCAP",
        help="write the twin's own record of its packets there at the end (when tcpdump cannot run)",
    )
    serve.add_argument("--backend", choices=default.backends, default=default.backend)
    serve.add_argument(
        "--ear-device", metavar="NAME", help=f"input the twin hears (default {default.lab_output_monitor})"
    )
    serve.add_argument(
        "--mouth-device", metavar="NAME", help=f"output the twin speaks on (default {default.lab_answer_output})"
    )
    serve.add_argument(
        "--hold",
        action="store_true",
        help="after booting (voice connection open, 'twin ready' printed) send nothing else until a "
        "line arrives on stdin: a capture started in between misses the boot, as with a real Echo",
    )
    serve.set_defaults(func=serve_command)
    check = sub.add_parser("check", help="validate a twin configuration file and print where it is wrong")
    check.add_argument("config", type=Path, nargs="?", metavar="FILE", help="default: the shipped configuration")
    add_format(check, csv=False)
    check.set_defaults(func=check_command)

    demo = subparsers.add_parser(
        "demo",
        help="run the demo persona against the twin and analyse it: the whole pipeline in a few minutes",
        description="Bring up the virtual lab, start the twin and a capture, run utterances/demo.yaml, then "
        "correlate and report; prints where everything is.",
    )
    demo.add_argument("--script", type=Path, default=DEMO_SCRIPT, help=f"persona script (default {DEMO_SCRIPT})")
    demo.add_argument(
        "--runs-dir",
        type=Path,
        default=default.runs_dir,
        help=f"where run directories go (default ./{default.runs_dir})",
    )
    demo.add_argument("--twin-config", type=Path, metavar="FILE", help="twin configuration (default: the shipped one)")
    # Quiet capture on both sides gives the attribution background traffic to compare against.
    demo.add_argument(
        "--quiet",
        type=seconds(),
        default=default.twin_quiet_s,
        metavar="S",
        help="seconds of capture without speech before the first and after the last utterance "
        f"(default {default.twin_quiet_s:g})",
    )
    demo.set_defaults(func=demo_command)


def serve_command(args: argparse.Namespace) -> int:
    from harness.twin.process import serve

    return serve(
        args.scripts,
        args.truth,
        args.config,
        args.synthetic_capture,
        args.backend,
        args.ear_device,
        args.mouth_device,
        args.hold,
    )


def check_command(args: argparse.Namespace) -> int:
    from harness.cli.console import err, out, print_json
    from harness.script import ScriptErrors
    from harness.twin.config import DEFAULT_CONFIG, load_config

    path = str(args.config or DEFAULT_CONFIG)
    try:
        config = load_config(args.config)
    except ScriptErrors as exc:
        if args.format == "json":
            print_json({"config": path, "valid": False, "errors": [str(error) for error in exc.errors]})
            return 1
        for error in exc.errors:
            err.print(str(error), markup=False, highlight=False, soft_wrap=True)
        return 1
    if args.format == "json":
        print_json(
            {
                "config": path,
                "valid": True,
                "errors": [],
                "skills": len(config.skills),
                "background_jobs": len(config.background),
            }
        )
        return 0
    out.print(
        f"{args.config or DEFAULT_CONFIG}: ok ({len(config.skills)} skills configured, "
        f"{len(config.background)} background jobs)",
        markup=False,
        highlight=False,
    )
    return 0


def demo_command(args: argparse.Namespace) -> int:
    from harness.cli.console import out
    from harness.errors import HarnessError
    from harness.report import summary_renderable
    from harness.rundir.analysis import read_analysis
    from harness.twin.demo import run_demo

    if not args.script.is_file():
        raise HarnessError(
            f"{args.script}: no such script (run `harness demo` from the project folder or give --script)"
        )
    demo = run_demo(args.script, args.runs_dir, args.twin_config, args.quiet, out)
    if demo.report is not None:
        out.print(summary_renderable(*read_analysis(demo.run.run)))
    out.print(demo.run.describe(demo.report), markup=False, highlight=False, soft_wrap=True)
    return demo.run.status
