"""End to end on the offline rig (real Prebid.js, headless Chromium, two personas and a control):
`harness crawl sync` finds exactly the planted syncs and none of the decoys, and `harness ads`
splits Amazon's partners from the other bidders."""

from __future__ import annotations

import json
from pathlib import Path

from crawl_rig import PERSONAS, PLANTED, crawl_rig, harness_cli, rig_or_skip

from harness.crawl.sync import read_syncs


def test_the_planted_syncs_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "rig").mkdir()
    with rig_or_skip(tmp_path / "rig") as rig:
        crawl = crawl_rig(rig, tmp_path)
    done = harness_cli("crawl", "sync", str(crawl), "--format", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    pairs = read_syncs(crawl)
    planted = {(sender, receiver) for sender, receiver, _ in PLANTED}
    assert {(p.sender, p.receiver) for p in pairs} == planted  # no false pair, none missed
    sites = len(rig.sites)
    for persona in PERSONAS:
        mine = [p for p in pairs if p.persona == persona]
        assert {p.visit_id for p in mine} == {f"{persona}/{i}" for i in range(sites)}
        assert len(mine) == len(planted) * sites and {p.carrier for p in mine} == {"redirect"}
    # each profile's own ad-id (pages loading at once may each get one before the cookie is kept)
    ids = {persona: {p.identifier for p in pairs if p.persona == persona} for persona in PERSONAS}
    assert sum(map(len, ids.values())) == len(set().union(*ids.values()))
    assert [(p["domain"], p["receives"], p["sends"]) for p in summary["partners"]] == sorted(
        [(receiver, sites * len(PERSONAS), 0) for _, receiver in planted], key=lambda row: row[0]
    )
    done = harness_cli(
        "ads", str(crawl / "bids.jsonl"), "--sync", str(crawl), "--control", "control", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["bidder_groups"] == {"appnexus": "partner", "openx": "non-partner"}
    assert {(row["persona"], row["group"]) for row in result["by_partnership"]} == {
        (persona, group) for persona in ("persona-a", "persona-b") for group in ("partner", "non-partner")
    }
