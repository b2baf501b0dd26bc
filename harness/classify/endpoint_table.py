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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.classify.classifier import Classifier, classifier, classify_ip
from harness.classify.networks import address_network
from harness.classify.suffixes import under_private_suffix

if TYPE_CHECKING:
    import pandas as pd

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
# the flow columns endpoints are made of
FLOW_INPUT = ("device", "name", "name_source", "remote_ip", "bytes_up", "bytes_down", "first_ns", "last_ns")


@dataclass
class EndpointTable:
    """``flows``: the device's flows with ``endpoint`` (= ``endpoint_id``), ``owner``,
    ``owner_source`` and ``network`` added; ``endpoints``: one row per endpoint (columns
    :data:`ENDPOINT_COLUMNS`), busiest first."""

    flows: pd.DataFrame
    endpoints: pd.DataFrame

    def owned_share(self) -> tuple[float, float]:
        """(share of the device's bytes to named endpoints, share to endpoints with an owner)."""
        return owned_share(self.endpoints[["bytes_up", "bytes_down", "named", "owner"]].to_dict("records"))


def owned_share(endpoints: Iterable[Mapping]) -> tuple[float, float]:
    """(share of the bytes to named endpoints, share to endpoints with an owner) of endpoint rows
    (an owner None or empty is none)."""
    total = named = owned = 0
    for e in endpoints:
        size = e["bytes_up"] + e["bytes_down"]
        total += size
        named += size if e["named"] else 0
        owned += size if e["owner"] else 0  # None or "" when none
    return (named / total, owned / total) if total else (0.0, 0.0)


def endpoint_keys(name: Iterable, remote_ip: Iterable) -> list[str]:
    """Each flow's endpoint: its learned name, else its remote address."""
    return [n if isinstance(n, str) else str(r) for n, r in zip(name, remote_ip, strict=True)]


def endpoint_key(flows: pd.DataFrame) -> pd.Series:
    """:func:`endpoint_keys` of a flow table."""
    import pandas as pd

    return pd.Series(endpoint_keys(flows["name"], flows["remote_ip"]), index=flows.index, dtype="str")


def classify_endpoints(flows: Mapping[str, np.ndarray], lists: Classifier | None = None) -> list[dict]:
    """The device's endpoints (flows with ``device`` true) of flow columns (:data:`FLOW_INPUT`,
    as a flow table has them), classified: one dict per endpoint with the keys
    :data:`ENDPOINT_COLUMNS`, busiest first (ties: first seen first); missing text is None.
    ``lists``: a Classifier with user lists (default the shared one)."""
    lists = lists or classifier()
    rows = [_endpoint(*parts, lists) for parts in zip(*_groups(flows), strict=True)]
    lists.save()
    size = np.array([r["bytes_up"] + r["bytes_down"] for r in rows], np.int64)
    return [rows[i] for i in np.argsort(-size, kind="stable")]


def classify_flows(flows: pd.DataFrame, lists: Classifier | None = None) -> EndpointTable:
    """:func:`classify_endpoints` of a flow table, with the device's flows given their endpoints' owners."""
    import pandas as pd

    table = pd.DataFrame(
        classify_endpoints({c: flows[c].to_numpy() for c in FLOW_INPUT}, lists), columns=ENDPOINT_COLUMNS
    )
    for col in ("registrable_domain", "organization", "owner", "owner_source", "network"):
        table[col] = table[col].astype(object).where(table[col].notna(), None)  # None, never NaN
    mine = flows[flows["device"].astype(bool)].reset_index(drop=True)
    mine = mine.assign(endpoint=endpoint_key(mine))
    owners = table.set_index("endpoint_id")[["owner", "owner_source", "network"]]
    mine = mine.join(owners, on="endpoint")
    if not len(mine):
        mine = mine.assign(**{c: pd.Series(dtype=object) for c in ("owner", "owner_source", "network")})
    return EndpointTable(mine, table)


def _groups(flows: Mapping[str, np.ndarray]) -> tuple[list, ...]:
    """Per endpoint, in order of first appearance: (key, named, name sources best first, addresses
    sorted, busiest address (ties: the first in sort order), flows, bytes up, bytes down, first
    ns, last ns). Numpy sums per endpoint; Python only to give text values their codes."""
    dev = np.flatnonzero(np.asarray(flows["device"], bool))
    name, remote = flows["name"][dev], flows["remote_ip"][dev]
    codes: dict[str, int] = {}
    key = np.array([codes.setdefault(k, len(codes)) for k in endpoint_keys(name, remote)], np.int64)
    if not len(key):
        return ([],) * 10
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])  # one group per code, in code order

    def per_endpoint(ufunc: np.ufunc, column: str) -> list[int]:
        return ufunc.reduceat(np.asarray(flows[column])[dev][order], bounds).tolist()

    up, down = per_endpoint(np.add, "bytes_up"), per_endpoint(np.add, "bytes_down")
    named = np.logical_or.reduceat(np.array([isinstance(n, str) for n in name])[order], bounds).tolist()
    sources: list[set[str]] = [set() for _ in codes]
    for k, s in zip(key.tolist(), flows["name_source"][dev].tolist(), strict=True):
        if s != "none":
            sources[k].add(s)
    # bytes per (endpoint, address)
    addr_codes: dict[str, int] = {}
    addr = np.array([addr_codes.setdefault(str(r), len(addr_codes)) for r in remote], np.int64)
    pair, at = np.unique(key * len(addr_codes) + addr, return_inverse=True)  # codes < 2^31 each
    pair_size = np.zeros(len(pair), np.int64)
    np.add.at(pair_size, at.ravel(), np.asarray(flows["bytes_up"])[dev] + np.asarray(flows["bytes_down"])[dev])
    texts, count = list(addr_codes), len(addr_codes)
    addresses: list[list[str]] = [[] for _ in codes]
    busiest: list[tuple[int, str] | None] = [None for _ in codes]
    for p, size in zip(pair.tolist(), pair_size.tolist(), strict=True):
        k, a = divmod(p, count)
        text = texts[a]
        addresses[k].append(text)
        best = busiest[k]
        if best is None or size > best[0] or (size == best[0] and text < best[1]):
            busiest[k] = (size, text)
    return (
        list(codes),
        named,
        [sorted(s, key=lambda x: (_RANK.get(x, len(_RANK)), x)) for s in sources],
        [sorted(a) for a in addresses],
        [b[1] for b in busiest if b is not None],
        np.diff(np.r_[bounds, len(key)]).tolist(),
        up,
        down,
        per_endpoint(np.minimum, "first_ns"),
        per_endpoint(np.maximum, "last_ns"),
    )


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
