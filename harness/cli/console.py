"""The terminal: one rich console for results (stdout) and one for messages (stderr).

Both show control characters inert wherever they come from (a table cell, a warning, the live
view), so a name from a capture or a file can never drive the terminal; rich's own cursor and
style codes pass unchanged.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import IO, TYPE_CHECKING, Any

from harness.progress import no_progress
from harness.textsafe import csv_safe_frame, terminal_text

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.text import Text

    from harness.progress import Progress


@cache
def _inert_console_class() -> type[Console]:
    """A rich console that passes the text of every rendered segment through :func:`terminal_text`
    (made on first use: rich loads only for commands that print with it)."""
    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment

    class _InertConsole(Console):
        def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
            for segment in super().render(renderable, options):
                if segment.control is None:
                    text = terminal_text(segment.text, keep_newlines=True)
                    if text != segment.text:
                        segment = Segment(text, segment.style)
                yield segment

    return _InertConsole


@cache
def _console(stderr: bool) -> Console:
    return _inert_console_class()(stderr=stderr, highlight=False)


def __getattr__(name: str) -> Any:
    """``out`` (results, stdout) and ``err`` (messages, stderr), and the console class, made on first use."""
    if name == "out":
        return _console(False)
    if name == "err":
        return _console(True)
    if name == "_InertConsole":
        return _inert_console_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plain(value: object, style: str = "") -> Text:
    """``value`` as a table cell or message part: never markup, control characters inert (so the
    cell's width is measured on what is shown)."""
    from rich.text import Text

    return Text(terminal_text(str(value)), style=style)


def warn(message: str) -> None:
    """Print a warning line on stderr (the message is text, never markup)."""
    from rich.text import Text

    _console(True).print(Text.assemble(("warning:", "yellow"), " ", plain(message)), soft_wrap=True)


def error_line(message: str) -> None:
    """Print an error as exactly one line on stderr (no markup interpretation of the text)."""
    _console(True).print(f"harness: error: {terminal_text(message)}", markup=False, soft_wrap=True)


def print_json(doc: object) -> None:
    """A command's ``--format json`` output: one JSON document on stdout, indented, UTF-8 as is."""
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")  # not through rich: 25 ms to load


def print_csv(frame: pd.DataFrame) -> None:
    """A command's ``--format csv`` output: the table with list cells joined by ';', safe to open in a spreadsheet."""
    lists = {
        c: frame[c].map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        for c in frame.columns
        if frame[c].map(lambda v: isinstance(v, (list, tuple))).any()
    }
    sys.stdout.write(csv_safe_frame(frame.assign(**lists)).to_csv(index=False))


def _may_be_terminal(stream: IO[str]) -> bool:
    """Whether rich could take ``stream`` for a terminal: a TTY, or the environment says it is one
    (rich decides the rest)."""
    return stream.isatty() or os.environ.get("TTY_COMPATIBLE") == "1" or bool(os.environ.get("FORCE_COLOR"))


@contextmanager
def progress(quiet: bool = False) -> Iterator[Progress]:
    """A :class:`harness.progress.Progress` drawn as rich bars on stderr, one per step, gone when
    the block ends; silent when stderr is not a terminal or ``quiet`` (so never in piped or JSON output)."""
    if quiet or not _may_be_terminal(sys.stderr):
        yield no_progress  # without loading rich (40 ms)
        return
    from rich.progress import BarColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    console = _console(True)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Bars(*columns, console=console, transient=True, disable=quiet or not console.is_terminal) as bars:
        tasks: dict[str, TaskID] = {}

        def report(step: str, done: float = 0, total: float | None = None) -> None:
            if step not in tasks:
                for task in tasks.values():
                    bars.update(task, completed=bars.tasks[task].total or 1, total=bars.tasks[task].total or 1)
                tasks[step] = bars.add_task(step, total=total)
            bars.update(tasks[step], completed=done, total=total)

        yield report
