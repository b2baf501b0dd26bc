"""Endpoint classification: registrable domain, organisation, party, category, ad/tracking flag.

All lists are offline: the public-suffix list bundled with ``publicsuffixlist``, EasyList and
EasyPrivacy bundled with ``braveblock``, and the project's own lists in ``data/``.
"""

from harness.classify.classifier import ENDPOINTS_ENV, Classifier, classifier, classify_ip, classify_name
from harness.classify.endpoint_table import ENDPOINT_COLUMNS, EndpointTable, classify_flows, endpoint_key
from harness.classify.model import CATEGORIES, PARTIES, Category, Classification, Party
from harness.classify.networks import Network, address_network

__all__ = [
    "CATEGORIES",
    "ENDPOINT_COLUMNS",
    "ENDPOINTS_ENV",
    "PARTIES",
    "Category",
    "Classification",
    "Classifier",
    "EndpointTable",
    "Network",
    "Party",
    "address_network",
    "classifier",
    "classify_flows",
    "classify_ip",
    "classify_name",
    "endpoint_key",
]
