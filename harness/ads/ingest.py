"""Load bids, audio ads and advertising interests from the files a study collected.

Which of the four kinds a file holds is read from its CSV header or first JSON record. Each bad
row is reported as ``FILE:LINE: message`` and skipped (counted), or, when ``strict``, raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.ads.currency import Rates
from harness.ads.models import (
    AudioAd,
    AudioAdRow,
    Bid,
    FlatBidRow,
    Interest,
    InterestRow,
    PrebidBid,
    PrebidVisit,
)
from harness.ads.records import BadRecord, Record, csv_header, file_format, normalise_key, read_text, records
from harness.errors import InputError, Place
from harness.jsonl import text_lines
from harness.progress import Progress, no_progress

PREBID_KEYS = {"bid_responses", "getBidResponses", "bidResponses", "winning_bids", "getAllWinningBids", "winningBids"}
M = TypeVar("M", bound=BaseModel)


class RowError(InputError):
    """A bad row, printed as ``FILE:LINE: message``."""

    def __str__(self) -> str:
        return f"{self.path}:{self.place.line}: {self.message}"


@dataclass
class FileSummary:
    path: str
    kind: str
    format: str
    rows: int = 0
    skipped: int = 0
    no_currency: int = 0  # Prebid bids that named no currency, read as Prebid's default


@dataclass
class AdsData:
    """Everything loaded, plus the rows skipped (as :class:`RowError`, in file order)."""

    bids: list[Bid] = field(default_factory=list)
    audio_ads: list[AudioAd] = field(default_factory=list)
    interests: list[Interest] = field(default_factory=list)
    skipped: list[RowError] = field(default_factory=list)
    files: list[FileSummary] = field(default_factory=list)

    def nothing_usable(self, shown: int = 3) -> str:
        """Why nothing survived: the files read, how many rows each lost, and the first errors."""
        counts = ", ".join(f"{f.path} ({f.skipped} bad row(s))" for f in self.files) or "no files"
        first = "; ".join(str(error) for error in self.skipped[:shown])
        more = f" (+{len(self.skipped) - shown} more)" if len(self.skipped) > shown else ""
        return f"no usable rows in {counts}" + (f": {first}{more}" if first else "")


def kind_of(keys: Iterable[str]) -> str | None:
    """Which kind of data a record with these keys holds, or None."""
    keys = set(keys)
    normal = {normalise_key(key) for key in keys}
    if keys & PREBID_KEYS:
        return "prebid"
    if "cpm" in normal:
        return "bids"
    if normal & {"advertiser", "transcript"}:
        return "audio_ads"
    if "interest" in normal:
        return "interests"
    return None


# rows between two progress reports (a report per row would cost more than the row)
PROGRESS_ROWS = 2000


def load_files(
    paths: Iterable[str | Path], rates: Rates, strict: bool = False, progress: Progress = no_progress
) -> AdsData:
    """Read every file into one :class:`AdsData`; ``strict`` raises on the first bad row.
    ``progress`` hears "reading FILE" with the records of each file done."""
    data = AdsData()
    for path in paths:
        _load_file(Path(path), rates, strict, data, progress)
    return data


def _load_file(path: Path, rates: Rates, strict: bool, data: AdsData, progress: Progress) -> None:
    progress(f"reading {path.name}")
    text = read_text(path)
    fmt = file_format(path, text)
    rows = list(records(path, text, fmt))
    first = next((row for row in rows if isinstance(row, Record)), None)
    keys = csv_header(text) if fmt == "csv" else (first.data.keys() if first else ())
    kind = kind_of(keys)
    if kind is None:
        if not rows:
            raise InputError(path, "no records")
        if fmt == "csv":  # the header is the culprit
            line = next((n for n, raw in enumerate(text_lines(text), 1) if raw.strip(",; \t")), 1)
        elif first is None:  # not one readable record: say why the first one is not
            bad = next(row for row in rows if isinstance(row, BadRecord))
            raise InputError(path, bad.message, Place(line=bad.line))
        else:
            line = first.line
        raise InputError(
            path,
            "cannot tell what this file holds: expected Prebid bid responses, a cpm column (bids), "
            "an advertiser or transcript column (audio ads) or an interest column (interests)",
            Place(line=line),
        )
    summary = FileSummary(str(path), kind, fmt)
    data.files.append(summary)

    def skip(line: int, message: str) -> None:
        error = RowError(path, message, Place(line=line))
        if strict:
            raise error
        data.skipped.append(error)
        summary.skipped += 1

    for done, row in enumerate(rows, 1):
        if done % PROGRESS_ROWS == 0:
            progress(f"reading {path.name}", done, len(rows))
        if isinstance(row, BadRecord):
            skip(row.line, row.message)
            continue
        item = row.data if kind == "prebid" else {normalise_key(key): value for key, value in row.data.items()}
        for result in _convert(kind, item, rates):
            if isinstance(result, str):
                skip(row.line, result)
                continue
            summary.rows += 1
            if isinstance(result, Bid):
                data.bids.append(result)
                summary.no_currency += result.currency_assumed
            elif isinstance(result, AudioAd):
                data.audio_ads.append(result)
            else:
                data.interests.append(result)


def _convert(kind: str, item: dict[str, Any], rates: Rates) -> Iterator[Bid | AudioAd | Interest | str]:
    """The clean records one input record yields, or for each bad part a message."""
    if kind == "prebid":
        yield from _prebid_bids(item, rates)
        return
    model = {"bids": FlatBidRow, "audio_ads": AudioAdRow, "interests": InterestRow}[kind]
    row = _validate(model, item)
    if isinstance(row, str):
        yield row
    elif isinstance(row, FlatBidRow):
        yield _bid(row.persona, row.site, row.visit_time_ns, row, row.won, rates)
    elif isinstance(row, AudioAdRow):
        yield AudioAd(**row.model_dump(exclude={"category"}), category=row.category or "uncategorised")
    else:
        yield Interest(persona=row.persona, interest=row.interest, category=row.category or row.interest)


def _prebid_bids(item: dict[str, Any], rates: Rates) -> Iterator[Bid | str]:
    visit = _validate(PrebidVisit, item)
    if isinstance(visit, str):
        yield visit
        return
    offered: list[PrebidBid] = []
    for unit_code, unit in visit.bid_responses.items():
        for index, raw in enumerate(unit.bids):
            bid = _validate(PrebidBid, {"adUnitCode": unit_code, **raw})
            if isinstance(bid, str):
                yield f"bid_responses[{unit_code!r}].bids[{index}]: {bid}"
            else:
                offered.append(bid)
    won = [False] * len(offered)
    extra: list[PrebidBid] = []
    for index, raw in enumerate(visit.winning_bids):
        winner = _validate(PrebidBid, raw)
        if isinstance(winner, str):
            yield f"winning_bids[{index}]: {winner}"
            continue
        match = next((i for i, bid in enumerate(offered) if not won[i] and _same_bid(bid, winner)), None)
        if match is None:
            extra.append(winner)  # a winner the responses did not list is still a bid seen
        else:
            won[match] = True
    for bid, is_winner in [*zip(offered, won, strict=True), *((bid, True) for bid in extra)]:
        yield _bid(visit.persona, visit.site, visit.visit_time_ns, bid, is_winner, rates)


def _same_bid(offered: PrebidBid, winner: PrebidBid) -> bool:
    if offered.ad_id and winner.ad_id:
        return offered.ad_id == winner.ad_id
    return (offered.bidder, offered.ad_unit, offered.cpm, offered.currency) == (
        winner.bidder,
        winner.ad_unit,
        winner.cpm,
        winner.currency,
    )


def _bid(persona: str, site: str, visit_ns: int, bid: FlatBidRow | PrebidBid, won: bool, rates: Rates) -> Bid | str:
    try:
        cpm = rates.convert(bid.cpm, bid.currency)
    except ValueError as exc:
        return str(exc)
    return Bid(
        persona=persona,
        site=site,
        visit_time_ns=visit_ns,
        bidder=bid.bidder,
        cpm=cpm,
        currency=rates.target,
        cpm_original=bid.cpm,
        currency_original=bid.currency,
        currency_assumed=isinstance(bid, PrebidBid) and bid.currency_assumed,
        ad_unit=bid.ad_unit,
        width=bid.width,
        height=bid.height,
        won=won,
    )


def _validate(model: type[M], item: dict[str, Any]) -> M | str:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        return "; ".join(_message(error) for error in exc.errors())


def _message(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    text = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        text = "missing"
    return f"{where}: {text}" if where else text
