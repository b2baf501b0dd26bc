"""The terminal: one rich console for results (stdout) and one for messages (stderr).

Both show control characters inert wherever they come from (a table cell, a warning, the live
view), so a name from a capture or a file can never drive the terminal; rich's own cursor and
style codes pass unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from harness.textsafe import csv_safe_frame, terminal_text

if TYPE_CHECKING:
    import pandas as pd


class _InertConsole(Console):
    """A rich console that passes the text of every rendered segment through :func:`terminal_text`."""

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None:
                text = terminal_text(segment.text, keep_newlines=True)
                if text != segment.text:
                    segment = Segment(text, segment.style)
            yield segment


out = _InertConsole(highlight=False)
err = _InertConsole(stderr=True, highlight=False)


def plain(value: object, style: str = "") -> Text:
    """``value`` as a table cell or message part: never markup, control characters inert (so the
    cell's width is measured on what is shown)."""
    return Text(terminal_text(str(value)), style=style)


def warn(message: str) -> None:
    """Print a warning line on stderr (the message is text, never markup)."""
    err.print(Text.assemble(("warning:", "yellow"), " ", plain(message)), soft_wrap=True)


def error_line(message: str) -> None:
    """Print an error as exactly one line on stderr (no markup interpretation of the text)."""
    err.print(f"harness: error: {terminal_text(message)}", markup=False, soft_wrap=True)


def print_json(doc: object) -> None:
    """A command's ``--format json`` output: one JSON document on stdout, indented, UTF-8 as is."""
    out.file.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def print_csv(frame: pd.DataFrame) -> None:
    """A command's ``--format csv`` output: the table with list cells joined by ';', safe to open in a spreadsheet."""
    lists = {c: frame[c].map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for c in frame.columns
             if frame[c].map(lambda v: isinstance(v, (list, tuple))).any()}  # fmt: skip
    out.file.write(csv_safe_frame(frame.assign(**lists)).to_csv(index=False))
