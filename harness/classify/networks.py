"""Who runs the network an address is in: an offline IP-to-ASN map, ASN names mapped to organisations.

The map is the Country+ASN IPv4+IPv6 file bundled with ``geoip2fast`` (built from MaxMind's
GeoLite2 ASN data of 2024-06-18); nothing is fetched. An ASN name the organisation list knows
(``networks:`` globs in ``data/organizations.yaml``, e.g. ``AMAZON-*`` -> Amazon) gives that
organisation's ultimate owner; any other ASN name stands for itself. Local and special-purpose
and multicast addresses belong to the ``local network``.

Being in a network says who *hosts* an address, not who operates the service on it: AWS
customers' servers are in Amazon's networks too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache

from harness.classify.memo import Memo
from harness.errors import HarnessError

DATA_FILE = "geoip2fast-asn-ipv6.dat.gz"
LOCAL = "local network"


@dataclass(frozen=True, slots=True)
class Network:
    """The network of an address: its ASN name as registered (empty when local or unknown) and the
    organisation it maps to (the ASN name itself when the list has none; None when unknown)."""

    asn_name: str
    owner: str | None


@cache
def _database():
    try:
        from geoip2fast import GeoIP2Fast

        return GeoIP2Fast(geoip2fast_data_file=DATA_FILE)
    except Exception as exc:  # the package raises its own error types; any failure means no map
        raise HarnessError(f"cannot load the IP-to-ASN map of geoip2fast ({DATA_FILE}): {exc}") from None


MEMO = Memo("networks")


@cache
def address_network(address: str) -> Network:
    """The network of an IPv4 or IPv6 address (raises ValueError for something that is not one)."""
    return Network(*MEMO.get(str(ipaddress.ip_address(address)), _lookup))


def _lookup(address: str) -> tuple[str, str | None]:
    from harness.classify.organizations import network_owner  # a YAML list: only when not remembered

    ip = ipaddress.ip_address(address)
    if not ip.is_global or ip.is_multicast:
        return "", LOCAL
    found = _database().lookup(address).asn_name or ""
    if not found:
        return "", None
    return found, network_owner(found) or found
