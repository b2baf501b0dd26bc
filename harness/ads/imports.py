"""Imports into the files ``harness ads`` reads: the study's per-site bid files and Amazon's
advertising audiences.

**Per-site bid files** (as the study published its crawl: one JSON file per site and persona).
A file holds what ``pbjs.getBidResponses()`` returned (ad unit -> ``{"bids": [...]}``), or a list
of bid objects, or one or more visit objects (``persona``, ``site``, ``visit_time``,
``getBidResponses``/``getAllWinningBids``). Missing persona and site come from the file's path
(``PERSONA/SITE.json`` or ``PERSONA_SITE.json`` relative to the folder given, or a pattern with
named groups ``persona`` and ``site``), else from ``--persona`` and the file name; a missing time
from ``--time``, else the file's modification time. Output: one visit per line (JSON lines).

**Amazon audiences**: the ``Advertising.*Audiences.csv`` files of Amazon's "Request your data"
export, one column of audience names each (headers as Amazon writes them, e.g. ``Amazon Audiences
in which you are included``, ``Audiences in which you are included via 3rd Parties``), or any CSV
with an ``audience``/``segment``/``interest`` column. Output: ``persona,interest,category,source``
rows (category empty: each audience is its own category unless the researcher groups them).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.ads.ingest import PREBID_KEYS
from harness.ads.models import PrebidBid, PrebidVisit
from harness.ads.records import BadRecord, csv_header, file_format, read_text, records
from harness.errors import InputError, Place, first_problem
from harness.files import atomic_write_text
from harness.textsafe import csv_safe_row

#: Where persona and site are read from a bid file's path (relative to the folder given).
DEFAULT_NAME_PATTERNS = (
    r"(?:.*/)?(?P<persona>[^/]+)/(?P<site>[^/]+)\.json",
    r"(?P<persona>[^/_]+)_(?P<site>[^/]+)\.json",
)
#: Audience columns of Amazon's export (normalised headers) and the generic ones accepted.
AUDIENCE_COLUMNS = {
    "amazon_audiences_in_which_you_are_included": "amazon",
    "audiences_in_which_you_are_included_via_3rd_parties": "third-party",
    "advertisers_who_brought_audiences_in_which_you_are_included": "advertiser",
    "audience": "",
    "audiences": "",
    "audience_name": "",
    "segment": "",
    "segment_name": "",
    "interest": "",
}
_VISIT_KEYS = PREBID_KEYS | {"persona", "site", "url", "page", "visit_time", "time", "timestamp"}


@dataclass
class BidImport:
    files: int = 0
    visits: int = 0
    bids: int = 0
    warnings: list[str] = field(default_factory=list)


def import_study_bids(
    paths: Iterable[Path],
    output: Path,
    persona: str | None = None,
    name_pattern: str | None = None,
    time: str | None = None,
) -> BidImport:
    """Convert per-site bid files (or folders of them) into one JSON-lines file of visits."""
    try:
        patterns = [re.compile(name_pattern)] if name_pattern else [re.compile(p) for p in DEFAULT_NAME_PATTERNS]
    except re.error as exc:
        raise InputError("--name-pattern", f"not a regular expression: {exc}") from None
    summary = BidImport()
    lines = []
    for path, relative in _bid_files(paths):
        summary.files += 1
        names = _names_from_path(relative, patterns)
        defaults = {
            "persona": persona or names.get("persona"),
            "site": names.get("site") or path.stem,
            "visit_time": time or _mtime(path),
        }
        for line, visit in _file_visits(path, summary.warnings):
            visit = {key: value for key, value in defaults.items() if value} | visit
            try:
                checked = PrebidVisit.model_validate(visit)
            except ValidationError as exc:
                raise InputError(path, first_problem(exc), Place(line=line)) from None
            visit["getBidResponses"] = _good_bids(checked, path, line, summary)
            summary.visits += 1
            lines.append(json.dumps(visit, ensure_ascii=False) + "\n")
    if not summary.files:
        raise InputError(", ".join(map(str, paths)), "no .json bid files found")
    atomic_write_text(output, "".join(lines))
    return summary


def _bid_files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                yield file, file.relative_to(path).as_posix()
        else:
            yield path, path.name


def _names_from_path(relative: str, patterns: list[re.Pattern[str]]) -> dict[str, str]:
    for pattern in patterns:
        match = pattern.fullmatch(relative)
        if match:
            return {key: value for key, value in match.groupdict().items() if value}
    return {}


def _mtime(path: Path) -> str:
    return str(Decimal(path.stat().st_mtime_ns) / 10**9)


def _file_visits(path: Path, warnings: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, visit object) for each visit a bid file holds; a bad bid of a list of bids is
    warned about at its own line and left out."""
    text = read_text(path)
    # a .json file is one JSON document: a syntax error is placed at its line and column
    fmt = "json" if path.suffix.lower() == ".json" else file_format(path, text)
    rows = list(records(path, text, fmt))
    loose_bids: list[dict[str, Any]] = []
    for row in rows:
        if isinstance(row, BadRecord):
            raise InputError(path, row.message, Place(line=row.line))
        if _VISIT_KEYS & row.data.keys():
            yield row.line, dict(row.data)
        elif "cpm" in row.data:
            try:
                PrebidBid.model_validate(row.data)
                loose_bids.append(row.data)
            except ValidationError as exc:
                warnings.append(f"{path}:{row.line}: {first_problem(exc)} (left out)")
        elif row.data and all(_is_unit(value) for value in row.data.values()):
            yield row.line, {"getBidResponses": row.data}
        else:
            raise InputError(
                path,
                "neither a Prebid visit, getBidResponses() output (ad unit -> {bids: [...]}) nor a bid",
                Place(line=row.line),
            )
    if loose_bids:
        units: dict[str, list[dict[str, Any]]] = {}
        for bid in loose_bids:
            units.setdefault(str(bid.get("adUnitCode", bid.get("ad_unit", ""))), []).append(bid)
        yield 1, {"getBidResponses": {unit: {"bids": bids} for unit, bids in units.items()}}


def _is_unit(value: Any) -> bool:
    return isinstance(value, list) or (isinstance(value, dict) and isinstance(value.get("bids"), list))


def _good_bids(visit: PrebidVisit, path: Path, line: int, summary: BidImport) -> dict[str, Any]:
    """The visit's bid responses without the bids ``harness ads`` would reject (each warned)."""
    kept: dict[str, Any] = {}
    for unit, responses in visit.bid_responses.items():
        good = []
        for index, bid in enumerate(responses.bids):
            try:
                PrebidBid.model_validate({"adUnitCode": unit, **bid})
            except ValidationError as exc:
                where = f"bid_responses[{unit!r}].bids[{index}]"
                summary.warnings.append(f"{path}:{line}: {where}: {first_problem(exc)} (left out)")
                continue
            good.append(bid)
        summary.bids += len(good)
        kept[unit] = {"bids": good}
    return kept


def import_amazon_audiences(paths: Iterable[Path], persona: str, output: Path) -> int:
    """Convert Amazon's ``*Audiences.csv`` files of one persona into an interests CSV; returns
    the number of rows written."""
    rows = []
    for path in paths:
        text = read_text(path)
        header = csv_header(text)
        column = next((name for name in header if name in AUDIENCE_COLUMNS), None)
        if column is None:
            raise InputError(
                path,
                "no audience column: expected Amazon's header (e.g. 'Amazon Audiences in which you are "
                "included') or one named audience, segment or interest",
                Place(line=_first_line(text)),
            )
        source = AUDIENCE_COLUMNS[column] or _source_from_name(path.name)
        for row in records(path, text, "csv"):
            if isinstance(row, BadRecord):
                raise InputError(path, row.message, Place(line=row.line))
            value = row.data.get(column, "").strip()
            if value and value.lower() not in {"none", "n/a", "no data"}:
                rows.append({"persona": persona, "interest": value, "category": "", "source": source})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["persona", "interest", "category", "source"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_safe_row(row) for row in rows)
    atomic_write_text(output, buffer.getvalue())
    return len(rows)


def _source_from_name(name: str) -> str:
    lowered = name.lower()
    for marker, source in (("3paudiences", "third-party"), ("advertiseraudiences", "advertiser"), ("amazon", "amazon")):
        if marker in lowered:
            return source
    return "audiences"


def _first_line(text: str) -> int:
    return next((n for n, line in enumerate(text.split("\n"), 1) if line.strip(",; \t\r")), 1)
