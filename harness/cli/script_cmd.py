"""`harness validate` and `harness schema`: check persona scripts, and describe their format.

The commands import what they use when they run, so that ``harness --help`` starts fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.args import add_format

if TYPE_CHECKING:
    from rich.text import Text

    from harness.errors import InputError

VALIDATE_EXAMPLES = """\
examples:
  harness validate utterances/                 every *.yaml / *.yml of the folder
  harness validate utterances/demo.yaml my.yaml
  harness validate --strict utterances/        warnings fail too (for CI)

Each problem is one line, FILE:LINE:COLUMN: error|warning: message (--format csv|json: one
row or object per problem, with file, line, column, severity and message).
Exit status: 0 all valid, 1 a script is invalid (or has warnings with --strict), 2 usage error.
"""

SCHEMA_EXAMPLES = """\
examples:
  harness schema > persona.schema.json         then start a script with the line
      # yaml-language-server: $schema=persona.schema.json
  harness schema --events > events.schema.json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check persona scripts and report every problem with its line and column",
        description="Check persona scripts (files, or folders of *.yaml and *.yml): YAML syntax,\n"
        "unknown or duplicate keys, wrong types, missing fields, duplicate ids, bad regexes;\n"
        "and lint warnings (missing wake word, duplicate utterances, utterances over ~15 s).",
        epilog=VALIDATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="persona script files or folders")
    validate.add_argument("--strict", action="store_true", help="fail on warnings too")
    validate.add_argument(
        "--quiet", "-q", action="store_true", help="print only what fails (no warnings unless --strict, no summary)"
    )
    add_format(validate)
    validate.set_defaults(func=run_validate)

    schema = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of persona scripts (or of events.jsonl)",
        description="Print the JSON Schema (draft 2020-12) of the persona script format, for editors\n"
        "that complete and check YAML (yaml-language-server), or with --events the schema of\n"
        "one line of a run's events.jsonl.",
        epilog=SCHEMA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = schema.add_mutually_exclusive_group()
    kinds.add_argument(
        "--of",
        choices=SCHEMAS,
        default="persona",
        help="which file: a persona script (default), a line of events.jsonl or truth.jsonl, "
        "manifest.json, analysis/summary.json, or the analysis tables' columns",
    )
    kinds.add_argument("--events", action="store_const", const="events", dest="of", help="short for --of events")
    schema.set_defaults(func=run_schema)


def _line(problem: InputError, severity: str) -> Text:
    from rich.text import Text

    style = "bold red" if severity == "error" else "yellow"
    where = str(problem.place)
    prefix = (
        f"{problem.path}:{where}: "
        if problem.place.line is not None
        else (f"{problem.path}: {where}: " if where else f"{problem.path}: ")
    )
    return Text.assemble(prefix, (severity, style), f": {problem.message}")


PROBLEM_FIELDS = ["file", "line", "column", "offset", "severity", "message"]


def run_validate(args: argparse.Namespace) -> int:
    from harness.cli.console import err, out, print_csv, print_json
    from harness.script import check_paths

    checks = check_paths(args.paths)
    show_warnings = args.strict or not args.quiet
    n_errors = n_warnings = invalid = 0
    problems: list[tuple[InputError, str]] = []
    for check in checks:
        found = [(e, "error") for e in check.errors]
        if show_warnings:
            found += [(w, "warning") for w in check.warnings]
        found.sort(key=lambda f: (f[0].place.line or 0, f[0].place.column or 0, f[1] != "error"))
        problems += found
        n_errors += len(check.errors)
        n_warnings += len(check.warnings)
        if check.errors or (args.strict and check.warnings):
            invalid += 1
    failed = invalid > 0
    rows = [
        dict(
            zip(
                PROBLEM_FIELDS,
                (str(p.path), p.place.line, p.place.column, p.place.offset, severity, p.message),
                strict=True,
            )
        )
        for p, severity in problems
    ]
    if args.format == "json":
        print_json(
            {"valid": not failed, "scripts": len(checks), "errors": n_errors, "warnings": n_warnings, "problems": rows}
        )
        return 1 if failed else 0
    if args.format == "csv":
        import pandas as pd

        print_csv(
            pd.DataFrame(rows, columns=PROBLEM_FIELDS).astype({"line": "Int64", "column": "Int64", "offset": "Int64"})
        )
        return 1 if failed else 0
    for problem, severity in problems:
        out.print(_line(problem, severity), soft_wrap=True)
    if not args.quiet:
        counts = f"{_plural(n_errors, 'error')}, {_plural(n_warnings, 'warning')}"
        if failed:
            err.print(
                f"[bold red]✗[/] {invalid} of {_plural(len(checks), 'script')} invalid: {counts}"
                + (" (--strict: warnings fail)" if args.strict and n_warnings else "")
            )
        else:
            err.print(f"[green]✓[/] {_plural(len(checks), 'script')} valid: {counts}")
    return 1 if failed else 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


SCHEMAS = ("persona", "events", "truth", "manifest", "summary", "analysis")


def run_schema(args: argparse.Namespace) -> int:
    from harness.cli.console import print_json
    from harness.rundir import analysis, events, manifest, tables, truth
    from harness.script import persona_json_schema

    schemas = {
        "persona": persona_json_schema,
        "events": events.events_json_schema,
        "truth": truth.truth_json_schema,
        "manifest": manifest.manifest_json_schema,
        "summary": analysis.summary_json_schema,
        "analysis": lambda: {"tables": [tables.table_schema(name) for name in tables.TABLE_NAMES]},
    }
    print_json(schemas[args.of]())
    return 0
