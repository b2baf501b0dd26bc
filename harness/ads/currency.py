"""Currency conversion with a table the user gives: ``currency,rate_to_target`` (CSV or YAML).

A rate says how many units of the target currency one unit of ``currency`` is worth. There is
no built-in table: exchange rates change, and a study must state the ones it used.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InputError, Place
from harness.yamlsource import read_source

_CODE = re.compile(r"^[A-Z]{3}$")


def currency_code(value: object) -> str:
    """An ISO 4217-style code, upper-cased; ``ValueError`` for anything else."""
    code = str(value or "").strip().upper()
    if not _CODE.match(code):
        raise ValueError(f"not a currency code: {value!r} (expected three letters, e.g. USD)")
    return code


@dataclass(frozen=True)
class Rates:
    """Conversion into ``target``; a currency without a rate cannot be converted."""

    target: str = "USD"
    to_target: dict[str, float] = field(default_factory=dict)

    def convert(self, amount: float, currency: str) -> float:
        """``amount`` in ``currency`` expressed in the target currency; ``ValueError`` if unknown."""
        if currency == self.target:
            return amount
        rate = self.to_target.get(currency)
        if rate is None:
            raise ValueError(f"currency {currency} has no rate to {self.target} (give one with --rates)")
        return amount * rate


def _rate(value: object, path: Path, line: int) -> float:
    try:
        rate = float(str(value).strip())
    except ValueError:
        raise InputError(path, f"rate is not a number: {value!r}", Place(line=line)) from None
    if not math.isfinite(rate) or rate <= 0:
        raise InputError(path, f"rate must be a positive number: {value!r}", Place(line=line))
    return rate


def _code(value: object, path: Path, line: int) -> str:
    try:
        return currency_code(value)
    except ValueError as exc:
        raise InputError(path, str(exc), Place(line=line)) from None


def load_rates(path: str | Path, target: str = "USD") -> Rates:
    """Read a rates table: CSV rows ``currency,rate_to_target`` (header optional) or a YAML
    mapping ``{EUR: 1.08, ...}``. Errors name the file and line."""
    path = Path(path)
    target = currency_code(target)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot read rates: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "not UTF-8 text", Place(offset=exc.start)) from None
    entries = _yaml_entries(path, text) if path.suffix.lower() in {".yaml", ".yml"} else _csv_entries(path, text)
    table: dict[str, float] = {}
    for code, rate, line in entries:
        if code in table:
            raise InputError(path, f"currency {code} given twice", Place(line=line))
        if code == target and rate != 1.0:
            raise InputError(path, f"the target currency {target} must have rate 1, not {rate}", Place(line=line))
        table[code] = rate
    return Rates(target=target, to_target=table)


def _csv_entries(path: Path, text: str) -> list[tuple[str, float, int]]:
    entries = []
    reader = csv.reader(io.StringIO(text))
    start = 1
    for row in reader:
        line, start = start, reader.line_num + 1
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2:
            raise InputError(path, "expected two columns: currency,rate_to_target", Place(line=line))
        if line == 1 and cells[0].lower() == "currency":
            continue
        entries.append((_code(cells[0], path, line), _rate(cells[1], path, line), line))
    return entries


def _yaml_entries(path: Path, text: str) -> list[tuple[str, float, int]]:
    # The persona scripts' reader: safe, bounded, and every error one line with line and column.
    source = read_source(path) if text.strip() else None
    if source is not None and source.errors:
        raise source.errors[0]
    if source is None or not isinstance(source.data, dict):
        line = source.place(()).line if source is not None else 1
        raise InputError(path, "expected a mapping of currency: rate_to_target", Place(line=line))
    entries = []
    for key, value in source.data.items():
        line = source.place((key,), key=True).line or 1
        if isinstance(value, (dict, list)):
            raise InputError(path, "a rate must be a number", Place(line=line))
        entries.append((_code(key, path, line), _rate(value, path, line), line))
    return entries
