"""The study's tables, computed from the dataset with DuckDB (SQL over the Parquet partitions).

- :func:`organisations`: per persona and skill, the organisations its utterances reached
  (attributed endpoints), their party, whether they advertise or track, the evidence (tries
  with a contact, out of tries) and a p-value: the smallest Benjamini-Hochberg-adjusted p of
  the attributions folded into the row, times their number (Bonferroni), capped at 1;
- :func:`third_parties`: every third-party organisation a persona's Echo contacted, and whether
  the control's did too;
- :func:`data_flows`: the attributed flows as (skill, domain, party, organisation) rows plus
  PoliCheck's flow tuple (entity, data type): entity ``we`` for the skill's own vendor, else the
  organisation (the domain when unknown); data type ``voice recording`` for the voice service,
  ``voice interaction`` otherwise (the contents are encrypted: what is known is that the
  utterance caused the contact);
- :func:`bid_result`: each persona's bids against the control's, per bidder, and before against
  after its first utterance, by the ads stage's own analysis (:func:`harness.ads.analysis.analyse`);
- :func:`partner_bids`: a persona's bids from bidders it synced identifiers with (partners)
  against its other bids (Mann-Whitney U, Holm across personas). A bidder is a partner when a
  sync pair's sender or receiver domain starts with the bidder's code (``rubicon`` ->
  ``rubiconproject.com``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.ads import stats
from harness.ads.analysis import Options, analyse
from harness.ads.ingest import AdsData
from harness.ads.models import Bid
from harness.ads.partners import bidder_domain
from harness.ads.result import AdsResult
from harness.ads.runs import RunFacts
from harness.errors import HarnessError

ORGANISATIONS_SQL = """
WITH hits AS (
    SELECT a.persona, a.run, a.skill_id, a.skill_name, a.endpoint_id, a.utterances, a.contacted, a.p_adjusted,
           coalesce(nullif(e.organization, ''), nullif(e.registrable_domain, ''), a.endpoint_id) AS organization,
           coalesce(nullif(e.registrable_domain, ''), a.endpoint_id) AS domain,
           coalesce(e.party, 'unknown') AS party, coalesce(e.ad_or_tracking, false) AS ad_or_tracking
    FROM attributions a
    LEFT JOIN endpoints e USING (persona, run, endpoint_id)
    WHERE a.attributed
), per_run AS (
    SELECT persona, run, skill_id, any_value(skill_name) AS skill_name, organization, party,
           bool_or(ad_or_tracking) AS ad_or_tracking, max(contacted) AS contacted, max(utterances) AS tries,
           min(p_adjusted) AS p_min, count(*) AS tests, list(DISTINCT endpoint_id) AS endpoints,
           list(DISTINCT domain) AS domains
    FROM hits GROUP BY persona, run, skill_id, organization, party
)
SELECT persona, skill_id, any_value(skill_name) AS skill_name, organization, party,
       bool_or(ad_or_tracking) AS ad_or_tracking, count(*) AS runs,
       sum(contacted)::BIGINT AS evidence, sum(tries)::BIGINT AS tries,
       least(1.0, min(p_min) * sum(tests)) AS p_value,
       list_sort(list_distinct(flatten(list(endpoints)))) AS endpoint_ids,
       list_sort(list_distinct(flatten(list(domains)))) AS domains
FROM per_run
GROUP BY persona, skill_id, organization, party
ORDER BY persona, skill_id, p_value, organization
"""

THIRD_PARTIES_SQL = """
WITH orgs AS (
    SELECT persona, coalesce(nullif(organization, ''), nullif(registrable_domain, ''), endpoint_id) AS organization,
           bool_or(ad_or_tracking) AS ad_or_tracking, count(DISTINCT endpoint_id) AS endpoint_count,
           sum(bytes_up)::BIGINT AS bytes_up, count(DISTINCT run) AS runs
    FROM endpoints WHERE party = 'third_party'
    GROUP BY ALL
)
SELECT o.*, (c.organization IS NOT NULL) AS in_control
FROM orgs o LEFT JOIN (SELECT organization FROM orgs WHERE persona = $control) c USING (organization)
ORDER BY persona, organization
"""

FLOWS_SQL = """
SELECT DISTINCT a.persona, a.skill_id, a.skill_name, a.endpoint_id,
       coalesce(nullif(e.registrable_domain, ''), a.endpoint_id) AS domain,
       coalesce(e.party, 'unknown') AS party, coalesce(e.organization, '') AS organization,
       CASE WHEN e.party = 'skill_vendor' THEN 'we'
            ELSE coalesce(nullif(e.organization, ''), nullif(e.registrable_domain, ''), a.endpoint_id) END AS entity,
       CASE WHEN e.category = 'voice' THEN 'voice recording' ELSE 'voice interaction' END AS data_type
FROM attributions a LEFT JOIN endpoints e USING (persona, run, endpoint_id)
WHERE a.attributed
ORDER BY persona, skill_id, domain, endpoint_id
"""

PARTNER_COLUMNS = [
    "persona",
    "partners",
    "n_partner",
    "n_other",
    "median_cpm_partner",
    "median_cpm_other",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "p_value",
    "p_holm",
]


@dataclass
class Study:
    organisations: pd.DataFrame
    third_parties: pd.DataFrame
    data_flows: pd.DataFrame
    bids: AdsResult | None
    partners: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table as a frame, for CSV."""
        out = {
            "organisations": self.organisations,
            "third_parties": self.third_parties,
            "data_flows": self.data_flows,
            "partner_bids": self.partners,
        }
        if self.bids is not None:
            out["bids_vs_control"] = bid_comparisons(self.bids)
            out["bids_before_after"] = pd.DataFrame([_flat(r) for r in self.bids.before_after])
        return out


def organisations(con: Any) -> pd.DataFrame:
    return con.sql(ORGANISATIONS_SQL).df()


def third_parties(con: Any, control: str | None) -> pd.DataFrame:
    return con.execute(THIRD_PARTIES_SQL, {"control": control or ""}).df()


def data_flows(con: Any) -> pd.DataFrame:
    return con.sql(FLOWS_SQL).df()


def first_utterances(con: Any) -> dict[str, int]:
    """Per persona the onset of its first spoken request (bench clock, UTC ns): "after" starts there."""
    rows = con.sql("SELECT persona, min(onset_ns) FROM utterances WHERE kind = 'request' GROUP BY persona").fetchall()
    return {persona: int(onset) for persona, onset in rows}


def _bids(con: Any) -> list[Bid]:
    frame = con.sql(
        "SELECT persona, site, visit_time_ns, bidder, cpm, currency, cpm_original, currency_original, ad_unit, "
        "width, height, won FROM bids"
    ).df()
    frame = frame.astype(object).where(frame.notna(), None)
    return [Bid(**row) for row in frame.to_dict("records")]


def bid_result(con: Any, control: str | None, options: Options | None = None) -> tuple[AdsResult | None, list[str]]:
    bids = _bids(con)
    if not bids:
        return None, ["no bids in the dataset: no bid comparison"]
    options = options or Options()
    runs = RunFacts(first_utterance_ns=first_utterances(con))
    try:
        result = analyse(AdsData(bids=bids), Options(**{**vars(options), "control": control}), runs)
    except HarnessError as exc:
        return None, [f"no bid comparison: {exc}"]
    return result, []


def bid_comparisons(result: AdsResult) -> pd.DataFrame:
    """The persona-against-control rows, then the per-bidder ones, flat (the interval as two columns)."""
    rows = [_flat(row) for comparison in result.comparisons for row in [comparison, *(comparison.per_bidder or [])]]
    return pd.DataFrame(rows)


def _flat(row: Any) -> dict[str, Any]:
    """A comparison as one CSV row: the interval as two columns."""
    doc = row.model_dump(exclude={"per_bidder", "ratio_ci"})
    doc["ratio_ci_low"], doc["ratio_ci_high"] = row.ratio_ci
    return doc


def _partner(bidder: str, domains: set[str]) -> bool:
    """The bidder bids from a domain that took part in a sync (bidder codes named by the ads table)."""
    return bidder_domain(bidder) in domains


def partner_bids(con: Any, options: Options | None = None) -> tuple[pd.DataFrame, list[str]]:
    options = options or Options()
    sync = con.sql("SELECT persona, sender, receiver FROM sync").df()
    if sync.empty:
        return pd.DataFrame(columns=PARTNER_COLUMNS), ["no sync pairs in the dataset: no partner comparison"]
    bids = con.sql("SELECT persona, bidder, cpm FROM bids").df()
    rows, warnings = [], []
    for persona, pairs in sync.groupby("persona"):
        domains = set(pairs["sender"]) | set(pairs["receiver"])
        mine = bids[bids["persona"] == persona]
        partner = np.array([_partner(b, domains) for b in mine["bidder"]], bool)
        x, y = mine["cpm"].to_numpy(float)[partner], mine["cpm"].to_numpy(float)[~partner]
        row: dict[str, Any] = {
            "persona": persona,
            "partners": ";".join(sorted(set(mine["bidder"][partner]))),
            "n_partner": int(x.size),
            "n_other": int(y.size),
            "median_cpm_partner": float(np.median(x)) if x.size else None,
            "median_cpm_other": float(np.median(y)) if y.size else None,
        }
        if min(x.size, y.size) >= options.min_n:
            rng = stats.rng_for(options.seed, "partners", str(persona))
            test = stats.compare(x, y, rng, options.resamples, options.confidence)
            row |= {"ratio": test.ratio, "ratio_ci_low": test.ratio_ci[0], "ratio_ci_high": test.ratio_ci[1]}
            row |= {"p_value": test.p_mwu}
        else:
            warnings.append(f"{persona}: {x.size} partner bid(s), {y.size} other: too few to test")
        rows.append(row)
    frame = pd.DataFrame(rows).reindex(columns=PARTNER_COLUMNS)
    tested = frame["p_value"].notna().to_numpy()
    frame.loc[tested, "p_holm"] = stats.holm(frame.loc[tested, "p_value"].to_numpy(float))
    return frame, warnings


def study(con: Any, control: str | None, options: Options | None = None) -> Study:
    """Every table of the study from an open dataset connection (:func:`harness.campaign.dataset.connect`)."""
    bids, warnings = bid_result(con, control, options)
    partners, more = partner_bids(con, options)
    return Study(
        organisations=organisations(con),
        third_parties=third_parties(con, control),
        data_flows=data_flows(con),
        bids=bids,
        partners=partners,
        warnings=warnings + more,
    )
