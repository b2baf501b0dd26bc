"""The device's endpoints: its flows grouped by endpoint, classified, each with an owner.

The one place that decides what an endpoint is (the flow's name, else its remote address), joins
the classification and assigns owners; ``harness net`` and correlation both use it.

Owner rule ("operated by" versus "hosted on"):
- a name whose organisation is listed (``organizations.yaml``) is **operated by** that
  organisation's ultimate owner; ``owner_source`` is how the name was learned (sni, quic, http,
  dns, certificate, or ``<source>_peer`` when borrowed from another flow to the same address);
- another name with a registrable domain is operated by whoever holds that domain (the owner is
  the domain), same ``owner_source``;
- otherwise (no name, or a customer's name on shared hosting such as ``*.cloudfront.net``) only
  the address's network is known: the owner is the organisation whose network **hosts** it,
  ``owner_source`` is ``address``. Amazon hosting a server never makes it first party: ``party``
  comes from names only and stays ``unknown`` here.
``network`` is always the hosting organisation of the endpoint's busiest address.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.classify.classifier import Classifier, classifier, classify_ip
from harness.classify.networks import address_network
from harness.classify.suffixes import under_private_suffix

ENDPOINT_COLUMNS = [
    "endpoint_id",
    "name",
    "named",
    "name_sources",
    "addresses",
    "flows",
    "bytes_up",
    "bytes_down",
    "first_ns",
    "last_ns",
    "registrable_domain",
    "organization",
    "party",
    "category",
    "ad_or_tracking",
    "lists",
    "owner",
    "owner_source",
    "network",
]
# how a name was learned, most direct first: an endpoint's owner_source is its best one
NAME_SOURCES = ["sni", "quic", "http", "dns", "certificate"]
_RANK = {s: i for i, s in enumerate(NAME_SOURCES)} | {
    s + "_peer": len(NAME_SOURCES) + i for i, s in enumerate(NAME_SOURCES)
}
ADDRESS = "address"


@dataclass
class EndpointTable:
    """``flows``: the device's flows with ``endpoint`` (= ``endpoint_id``), ``owner``,
    ``owner_source`` and ``network`` added; ``endpoints``: one row per endpoint (columns
    :data:`ENDPOINT_COLUMNS`), busiest first."""

    flows: pd.DataFrame
    endpoints: pd.DataFrame

    def owned_share(self) -> tuple[float, float]:
        """(share of the device's bytes to named endpoints, share to endpoints with an owner)."""
        e = self.endpoints
        total = (e["bytes_up"] + e["bytes_down"]).sum()
        if not total:
            return 0.0, 0.0
        size = e["bytes_up"] + e["bytes_down"]
        return float(size[e["named"]].sum() / total), float(size[e["owner"].notna()].sum() / total)


def endpoint_key(flows: pd.DataFrame) -> pd.Series:
    """A flow's endpoint: its learned name, else its remote address."""
    return flows["name"].fillna(flows["remote_ip"]).astype(str)


def classify_flows(flows: pd.DataFrame, lists: Classifier | None = None) -> EndpointTable:
    """Group the device's flows (``device`` true) of a flow table by endpoint and classify them
    (``lists``: a Classifier with user lists; default the shared one)."""
    lists = lists or classifier()
    mine = flows[flows["device"].astype(bool)].reset_index(drop=True)
    mine = mine.assign(endpoint=endpoint_key(mine), size=mine["bytes_up"] + mine["bytes_down"])
    rows = [_endpoint(*parts, lists) for parts in zip(*_groups(mine), strict=True)]
    lists.save()
    table = pd.DataFrame(rows, columns=ENDPOINT_COLUMNS)
    if len(table):
        order = (table["bytes_up"] + table["bytes_down"]).sort_values(ascending=False, kind="stable").index
        table = table.loc[order].reset_index(drop=True)
    for col in ("registrable_domain", "organization", "owner", "owner_source", "network"):
        table[col] = table[col].astype(object).where(table[col].notna(), None)  # None, never NaN
    owners = table.set_index("endpoint_id")[["owner", "owner_source", "network"]]
    mine = mine.drop(columns="size").join(owners, on="endpoint")
    if not len(mine):
        mine = mine.assign(**{c: pd.Series(dtype=object) for c in ("owner", "owner_source", "network")})
    return EndpointTable(mine, table)


def _groups(mine: pd.DataFrame) -> tuple[list, ...]:
    """Per endpoint, in order of first appearance: (key, named, name sources best first, addresses
    sorted, busiest address (ties: the first in sort order), flows, bytes up, bytes down, first
    ns, last ns). Grouped once for all endpoints: a pandas group per endpoint costs ~1 ms each."""
    keys = pd.unique(mine["endpoint"])
    if not len(keys):
        return ([],) * 10
    g = mine.groupby("endpoint", sort=False)
    sums = g[["bytes_up", "bytes_down"]].sum().reindex(keys)
    spans = g.agg(first_ns=("first_ns", "min"), last_ns=("last_ns", "max"), flows=("size", "size")).reindex(keys)
    named = (g["name"].count() > 0).reindex(keys)
    used = mine[["endpoint", "name_source"]].drop_duplicates()
    used = used[used["name_source"] != "none"]
    used = used.assign(rank=used["name_source"].map(lambda x: _RANK.get(x, len(_RANK)))).sort_values(
        ["rank", "name_source"], kind="stable"
    )
    sources = _lists(used["endpoint"], used["name_source"])
    by_address = mine.groupby(["endpoint", "remote_ip"], sort=True)["size"].sum().reset_index()
    addresses = _lists(by_address["endpoint"], by_address["remote_ip"])
    busiest = by_address.sort_values("size", ascending=False, kind="stable").drop_duplicates("endpoint")
    busiest = busiest.set_index("endpoint")["remote_ip"].reindex(keys)
    return (
        list(keys),
        named.tolist(),
        [sources.get(k, []) for k in keys],
        [sorted(map(str, addresses[k])) for k in keys],
        busiest.tolist(),
        spans["flows"].tolist(),
        sums["bytes_up"].tolist(),
        sums["bytes_down"].tolist(),
        spans["first_ns"].tolist(),
        spans["last_ns"].tolist(),
    )


def _lists(keys: pd.Series, values: pd.Series) -> dict[str, list]:
    """The ``values`` of each key, in order (a plain loop: pandas' ``agg(list)`` costs ~40 µs a group)."""
    out: dict[str, list] = {}
    for key, value in zip(keys.tolist(), values.tolist(), strict=True):
        out.setdefault(key, []).append(value)
    return out


def _endpoint(
    key: str,
    named: bool,
    sources: list[str],
    addresses: list[str],
    busiest: str,
    flows: int,
    bytes_up: int,
    bytes_down: int,
    first_ns: int,
    last_ns: int,
    lists: Classifier,
) -> dict:
    network = address_network(str(busiest))
    c = lists.classify_name(key) if named else classify_ip(key)
    if named and c.owner and not under_private_suffix(c.name):
        owner, how = c.owner, sources[0]
    elif named and c.registrable_domain and not under_private_suffix(c.name):
        owner, how = c.registrable_domain, sources[0]
    else:
        owner, how = network.owner, ADDRESS if network.owner else None
    return {
        "endpoint_id": key,
        "name": key,
        "named": named,
        "name_sources": sources,
        "addresses": addresses,
        "flows": flows,
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "first_ns": first_ns,
        "last_ns": last_ns,
        "registrable_domain": c.registrable_domain,
        "organization": c.organization,
        "party": c.party,
        "category": c.category,
        "ad_or_tracking": c.ad_or_tracking,
        "lists": list(c.lists),
        "owner": owner,
        "owner_source": how,
        "network": network.owner,
    }
