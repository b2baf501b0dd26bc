"""Reading bids, audio ads and interests: formats, bad rows with exact lines, currency, time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.ads import Rates, load_files, load_rates
from harness.ads.ingest import RowError
from harness.ads.times import to_epoch_ns
from harness.errors import InputError

DATA = Path(__file__).parent / "data" / "ads"
USD = Rates(target="USD")


def _skipped(data) -> list[str]:
    return [f"{Path(error.path).name}:{error.place.line}: {error.message}" for error in data.skipped]


def test_prebid_jsonl_bids_winners_and_bad_rows_with_their_lines():
    data = load_files([DATA / "prebid.jsonl"], USD)
    assert _skipped(data) == [
        "prebid.jsonl:13: not a JSON record: Expecting ',' delimiter (column 66)",
        "prebid.jsonl:18: persona: missing",
        "prebid.jsonl:19: bid_responses['div-top'].bids[0]: cpm: Input should be greater than 0",
        "prebid.jsonl:20: currency EUR has no rate to USD (give one with --rates)",
        "prebid.jsonl:20: currency GBP has no rate to USD (give one with --rates)",
    ]
    assert data.files[0].skipped == 5 and data.files[0].kind == "prebid"
    by_persona = {p: [b for b in data.bids if b.persona == p] for p in ("vanilla", "health", "fashion")}
    assert [len(v) for v in by_persona.values()] == [24, 24, 17]
    first_visit = [b for b in by_persona["vanilla"] if b.site == "news.example"]
    # One winner per visit, the highest bid, matched to its response by adId.
    assert sum(b.won for b in first_visit) == 1
    assert max(first_visit, key=lambda b: b.cpm).won
    assert {b.ad_unit for b in first_visit} == {"div-top", "div-side"}
    assert first_visit[0].visit_time_ns == 1682928000 * 10**9
    # ISO time with an offset: 15:00+02:00 is 13:00 UTC.
    assert [b.visit_time_ns for b in data.bids if b.site == "blog.example"] == [to_epoch_ns("2023-05-01T13:00:00Z")]


def test_prebid_json_array_reports_the_line_of_the_element_and_keeps_lone_winners():
    data = load_files([DATA / "prebid.json"], USD)
    assert _skipped(data) == ["prebid.json:18: visit_time: missing", "prebid.json:23: a record must be a JSON object"]
    health = [b for b in data.bids if b.persona == "health"]
    assert len(health) == 1 and health[0].won and health[0].bidder == "ix" and health[0].width is None
    vanilla = sorted((b.bidder, b.won) for b in data.bids if b.persona == "vanilla")
    assert vanilla == [("appnexus", True), ("rubicon", False)]
    assert data.bids[0].visit_time_ns == to_epoch_ns("2023-05-01T08:00:00Z") + 250_000_000


def test_flat_csv_counts_physical_lines_across_quoted_newlines():
    data = load_files([DATA / "bids.csv"], USD)
    assert _skipped(data) == [
        "bids.csv:10: visit_time: not an ISO 8601 time or epoch seconds: 'yesterday'",
        "bids.csv:11: currency EUR has no rate to USD (give one with --rates)",
        "bids.csv:15: cpm: Input should be greater than 0",
        "bids.csv:16: currency JPY has no rate to USD (give one with --rates)",
    ]
    vanilla = [b for b in data.bids if b.persona == "vanilla"]
    assert [b.won for b in vanilla] == [True, False, True, False, False]
    assert vanilla[4].width is None and vanilla[4].visit_time_ns == 1682938800_500_000_000
    assert [b.site for b in data.bids if b.bidder == "rubicon" and b.persona == "health"][
        0
    ] == "recipes.example\n/healthy"


@pytest.mark.parametrize("table", ["rates.csv", "rates.yaml"])
def test_currency_conversion_with_a_user_table(table):
    rates = load_rates(DATA / table, "USD")
    data = load_files([DATA / "bids.csv", DATA / "prebid.jsonl"], rates)
    euro = [b for b in data.bids if b.currency_original == "EUR"]
    assert [(b.cpm_original, b.currency) for b in euro] == [(14.2, "USD"), (0.5, "USD")]
    assert [b.cpm for b in euro] == pytest.approx([14.2 * 1.10, 0.5 * 1.10])
    assert [b.cpm for b in data.bids if b.currency_original == "GBP"] == pytest.approx([0.3 * 1.25])
    assert [m for m in _skipped(data) if "JPY" in m] == [
        "bids.csv:16: currency JPY has no rate to USD (give one with --rates)"
    ]


def test_converting_to_another_target_currency():
    rates = Rates(target="EUR", to_target={"USD": 0.9})
    data = load_files([DATA / "bids.csv"], rates)
    health = {b.site: b for b in data.bids if b.persona == "health"}
    assert health["sports.example"].cpm == 14.2 and health["sports.example"].currency == "EUR"
    assert health["news.example"].cpm == pytest.approx(9.8 * 0.9)


def test_bad_rates_tables_name_file_and_line(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_text("currency,rate_to_target\nEUR,1.1\nGBP,-2\n")
    with pytest.raises(InputError, match=r"r.csv:3:1: rate must be a positive number"):
        load_rates(bad)
    twice = tmp_path / "r.yaml"
    twice.write_text("EUR: 1.1\nEURO: 1.2\n")
    with pytest.raises(InputError, match=r"r.yaml:2:1: not a currency code: 'EURO'"):
        load_rates(twice)


def test_audio_ads_csv_and_jsonl_and_interests():
    data = load_files([DATA / "audio_ads.csv", DATA / "audio_ads.jsonl", DATA / "interests.csv"], USD)
    assert _skipped(data) == [
        "audio_ads.csv:12: time: not an ISO 8601 time or epoch seconds: 'not a time'",
        "audio_ads.jsonl:3: time: missing",
        "interests.csv:9: interest: missing",
    ]
    assert len(data.audio_ads) == 14 and len(data.interests) == 10
    assert [ad.category for ad in data.audio_ads if ad.advertiser == "Mystery"] == ["uncategorised"]
    assert data.audio_ads[0].transcript == "Drive the new CarCo sedan today"
    assert data.audio_ads[-1].time_ns == 1683028800 * 10**9
    assert {(i.interest, i.category) for i in data.interests if i.persona == "health"} >= {("Fitness", "Health")}


def test_strict_fails_on_the_first_bad_row():
    with pytest.raises(RowError) as caught:
        load_files([DATA / "bids.csv"], USD, strict=True)
    assert (
        str(caught.value) == f"{DATA / 'bids.csv'}:10: visit_time: not an ISO 8601 time or epoch seconds: 'yesterday'"
    )


def test_unrecognised_and_broken_files_are_errors(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("name,value\na,1\n")
    with pytest.raises(InputError, match=r"other.csv:1:1: cannot tell what this file holds"):
        load_files([other], USD)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"persona": "a", "cpm": 1,\n  "x": }\n]\n')
    with pytest.raises(InputError, match=r"broken.json:3:\d+: not valid JSON"):
        load_files([broken], USD)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"persona,cpm\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"bin.csv: byte 12: not UTF-8 text"):
        load_files([binary], USD)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-05-01T12:00:00Z", 1682942400_000_000_000),
        ("2023-05-01T14:00:00.123456789+02:00", 1682942400_123_456_789),
        (1682942400, 1682942400_000_000_000),
        (1682942400.25, 1682942400_250_000_000),
        ("1682942400.000000001", 1682942400_000_000_001),
    ],
)
def test_times_become_exact_utc_epoch_nanoseconds(value, expected):
    assert to_epoch_ns(value) == expected


@pytest.mark.parametrize("value", ["2023-05-01T12:00:00", "noon", 1682942400000, True, None])
def test_ambiguous_or_invalid_times_are_rejected(value):
    with pytest.raises(ValueError):
        to_epoch_ns(value)


def test_line_separators_inside_json_strings_neither_split_records_nor_shift_line_numbers(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 raw inside strings; lines are counted at newlines only,
    as editors and grep -n count them."""
    rows = [
        {"persona": "health", "time": "2023-05-01T10:00:00Z", "advertiser": "A\u2028B", "transcript": "one\u2029two"},
        {"persona": "health", "time": "2023-05-01T10:01:00Z", "advertiser": "C\x85D", "transcript": "three"},
        {"persona": "health", "advertiser": "E", "transcript": "no time"},
        {"persona": "vanilla", "time": "2023-05-01T10:02:00Z", "advertiser": "F\u2028G", "transcript": "four"},
    ]
    path = tmp_path / "audio_ads.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    data = load_files([path], USD)
    assert [ad.advertiser for ad in data.audio_ads] == ["A\u2028B", "C\x85D", "F\u2028G"]
    assert _skipped(data) == ["audio_ads.jsonl:3: time: missing"]


def test_prebid_bids_without_a_currency_are_read_as_usd_and_counted(tmp_path):
    """An old dump whose bids name no currency: Prebid itself assumes US dollars."""
    visits = [
        {"persona": p, "site": "news.example", "visit_time": 1682928000 + i,
         "getBidResponses": {"div-top": {"bids": [{"bidder": "appnexus", "cpm": 0.4 + i / 10, "adId": f"a{i}"}]}},
         "getAllWinningBids": [{"bidder": "appnexus", "cpm": 0.4 + i / 10, "adId": f"a{i}"}]}
        for i, p in enumerate(["vanilla", "health"])
    ]  # fmt: skip
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(json.dumps(v) for v in visits) + "\n")
    data = load_files([path], Rates(target="EUR", to_target={"USD": 0.5}))
    assert [(b.cpm_original, b.currency_original, b.cpm, b.won) for b in data.bids] == [
        (0.4, "USD", 0.2, True),
        (0.5, "USD", 0.25, True),
    ]
    assert data.files[0].no_currency == 2 and all(b.currency_assumed for b in data.bids)


def test_when_nothing_is_usable_the_error_names_the_files_and_the_first_errors(tmp_path):
    path = tmp_path / "bids.csv"
    path.write_text(
        "persona,visit_time,bidder,cpm,currency\nvanilla,1682928000,appnexus,-1,USD\nhealth,x,rubicon,1,USD\n"
    )
    data = load_files([path], USD)
    message = data.nothing_usable()
    assert message.startswith(f"no usable rows in {path} (2 bad row(s)): {path}:2: cpm:")
    assert f"{path}:3: visit_time" in message


def test_a_null_size_is_no_size_and_a_negative_one_a_bad_bid(tmp_path):
    path = tmp_path / "visits.jsonl"
    bids = [
        {"bidder": "ix", "cpm": 1.0, "width": None, "height": None},
        {"bidder": "ix", "cpm": 2.0, "width": -300, "height": 250},
    ]
    visit = {"persona": "p", "time": 1_700_000_000, "getBidResponses": {"div": {"bids": bids}}}
    path.write_text(json.dumps(visit) + "\n")
    data = load_files([path], USD)
    assert [(bid.cpm, bid.width) for bid in data.bids] == [(1.0, None)]
    assert [str(e) for e in data.skipped] == [
        f"{path}:1: bid_responses['div'].bids[1]: width: Input should be greater than or equal to 0"
    ]
