"""The terminal: one rich console for results (stdout) and one for messages (stderr)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    err.print(f"[yellow]warning:[/yellow] {message}", markup=True, soft_wrap=True)


def error_line(message: str) -> None:
    """Print an error as exactly one line on stderr (no markup interpretation of the text)."""
    err.print(f"harness: error: {message}", markup=False, soft_wrap=True)


def print_json(doc: object) -> None:
    """A command's ``--format json`` output: one JSON document on stdout, indented, UTF-8 as is."""
    out.file.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def print_csv(frame: pd.DataFrame) -> None:
    """A command's ``--format csv`` output: the table with list cells joined by ';'."""
    lists = {c: frame[c].map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for c in frame.columns
             if frame[c].map(lambda v: isinstance(v, (list, tuple))).any()}  # fmt: skip
    out.file.write(frame.assign(**lists).to_csv(index=False))
