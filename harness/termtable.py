"""Terminal tables that keep the names that matter whole, piped or on an 80-column terminal.

rich gives a piped table 80 columns and cuts what does not fit with an ellipsis
(``unagi-na.ama…``). Here, when the table is drawn, name columns get the width of their longest
cell (up to a cap, and less only when the other columns would have under a few characters
each), and every other column folds to make room, keeping the words of its header whole when
the width allows ("background", not "backgrou" over "nd").
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

NAME_CAP = 40  # a name column never asks for more; longer names fold
OTHER_MIN = 4  # characters left to every other column before names give way
HEADER_WORD_CAP = 12  # a header word longer than this may still fold


def _width(cell: object) -> int:
    return cell.cell_len if isinstance(cell, Text) else Text(str(cell)).cell_len


class WholeNames:
    """``table`` drawn with its columns at the ``names`` positions whole (see the module)."""

    def __init__(self, table: Table, names: tuple[int, ...], cap: int) -> None:
        self.table = table
        self.names = names
        self.cap = cap

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.table
        columns = table.columns
        _, right, _, left = table.padding
        chrome = (2 if table.show_edge else 0) + (len(columns) - 1 if table.box else 0) + len(columns) * (left + right)
        wanted = {
            i: min(self.cap, max((_width(c) for c in [columns[i].header, *columns[i].cells]), default=1))
            for i in self.names
        }
        room = options.max_width - chrome - OTHER_MIN * (len(columns) - len(wanted))
        scale = min(1.0, room / max(1, sum(wanted.values())))
        for index, column in enumerate(columns):
            column.overflow = "fold"
            if index in wanted:
                column.width = max(OTHER_MIN, int(wanted[index] * scale))
        words = {
            i: min(HEADER_WORD_CAP, max(OTHER_MIN, *(len(w) for w in str(c.header).split())))
            for i, c in enumerate(columns)
            if i not in wanted
        }
        names_width = sum(columns[i].width or 0 for i in wanted)
        if chrome + names_width + sum(words.values()) <= options.max_width:
            for index, width in words.items():
                columns[index].min_width = width
        yield table


def keep_names(table: Table, *names: int, cap: int = NAME_CAP) -> WholeNames:
    """``table`` to print with the columns at the ``names`` positions kept whole, the others folded."""
    return WholeNames(table, names, cap)
