"""Owners of endpoints: names first ("operated by"), else the address's network ("hosted on")."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.classify import address_network, classify_flows
from harness.net.flow_table import FLOW_COLUMNS

VOICE = "52.94.227.146"  # an Echo's voice server: in AMAZON-02


def flow(remote_ip: str, name: str | None, source: str = "none", size: int = 100) -> dict:
    row = dict.fromkeys(FLOW_COLUMNS, 0)
    row.update(
        protocol="tcp",
        proto=6,
        local_ip="192.168.1.20",
        remote_ip=remote_ip,
        remote_port=443,
        name=name,
        name_source=source,
        device=True,
        bytes_up=size,
        bytes_down=size,
        first_ns=1,
        last_ns=2,
    )
    return row


@pytest.mark.parametrize(
    "address,asn,owner",
    [
        (VOICE, "AMAZON-02", "Amazon"),
        ("8.8.8.8", "GOOGLE", "Google"),
        ("151.101.1.1", "FASTLY", "Fastly"),
        ("192.168.1.1", "", "local network"),
        ("224.0.0.251", "", "local network"),
    ],
)
def test_address_networks(address: str, asn: str, owner: str) -> None:
    assert (address_network(address).asn_name, address_network(address).owner) == (asn, owner)


def test_owner_rule_operated_by_versus_hosted_on() -> None:
    flows = pd.DataFrame(
        [
            flow(VOICE, None, size=1000),
            flow("54.239.26.255", "unagi-na.amazon.com", "sni"),
            flow("52.216.1.1", "d3p8zr0ffa9t17.cloudfront.net", "dns"),
            flow("3.5.1.1", "api.some-skill.example", "certificate"),
            flow("3.5.1.2", "api.skill-vendor.com", "sni_peer"),
            {**flow("8.8.8.8", None), "device": False},
        ]
    )
    table = classify_flows(flows)
    got = {r.endpoint_id: (r.owner, r.owner_source, r.network, r.party) for r in table.endpoints.itertuples()}
    assert got == {
        VOICE: ("Amazon", "address", "Amazon", "unknown"),  # hosted on Amazon's network: not first party
        "unagi-na.amazon.com": ("Amazon", "sni", "Amazon", "platform"),  # operated by Amazon
        "d3p8zr0ffa9t17.cloudfront.net": ("Amazon", "address", "Amazon", "unknown"),  # a CloudFront customer
        "api.some-skill.example": ("Amazon", "address", "Amazon", "unknown"),  # no registrable domain
        "api.skill-vendor.com": ("skill-vendor.com", "sni_peer", "Amazon", "third_party"),  # hosted on AWS
    }
    assert list(table.endpoints["endpoint_id"])[0] == VOICE  # busiest first
    assert list(table.flows["endpoint"]) == [
        VOICE,
        "unagi-na.amazon.com",
        "d3p8zr0ffa9t17.cloudfront.net",
        "api.some-skill.example",
        "api.skill-vendor.com",
    ]
    assert table.owned_share() == (pytest.approx(4 * 200 / 2800), 1.0)


def test_empty_flow_table_gives_all_columns() -> None:
    table = classify_flows(pd.DataFrame({c: pd.Series(dtype=object) for c in FLOW_COLUMNS}).astype({"device": bool}))
    assert table.endpoints.empty and {"endpoint", "owner", "owner_source", "network"} <= set(table.flows.columns)
