"""Names from captures and files, neutralised on the way out.

A DNS name, an SNI, a persona or a bidder is data from the network or from someone else's file.
Two places would run it instead of showing it:

* a spreadsheet opening a CSV file runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or
  a tab or carriage return before one) as a formula; :func:`csv_cell` prefixes such text cells
  with a single quote, as OWASP advises for CSV injection, so it is shown as text;
* a terminal obeys control characters (ESC starting colour, title or hyperlink sequences, C1
  controls, bidirectional overrides); :func:`terminal_text` shows them as inert escapes such as
  ``\\x1b``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: What starts a text cell that a spreadsheet would evaluate.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# C0 controls, DEL, C1 controls and the bidirectional marks, embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def csv_cell(value: Any) -> Any:
    """``value`` with ``'`` in front if it is text starting like a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``csv.DictWriter`` row with every cell passed through :func:`csv_cell`."""
    return {key: csv_cell(value) for key, value in row.items()}


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` to hand to ``to_csv``: text cells through :func:`csv_cell`, numbers and
    times untouched (a negative number stays a number; only text gets the quote)."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    safe = frame.copy()
    for column in safe.columns:
        if is_object_dtype(safe[column]) or is_string_dtype(safe[column]):
            safe[column] = safe[column].map(csv_cell)
    return safe


def terminal_text(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an inert escape (``\\x1b``, ``\\u202e``).

    ``keep_newlines``: leave line breaks (for whole rendered output; a name never needs one).
    """
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    return pattern.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
