"""Ads seen by each persona, compared with the control's.

``ingest`` (Prebid bid responses, flat bid CSVs, audio ads, interests -> clean records),
``currency`` (user-given conversion table), ``times`` (ISO 8601 / epoch seconds -> UTC ns),
``runs`` (first utterance and control flag from bench run directories), ``stats`` (pure
two-sample statistics), ``analysis`` (the comparisons), ``result`` (the JSON form). Its HTML
(section and standalone page) is ``harness.report.ads``.
"""

from harness.ads.analysis import Options, analyse
from harness.ads.currency import Rates, load_rates
from harness.ads.ingest import AdsData, load_files
from harness.ads.result import AdsResult
from harness.ads.runs import RunFacts, read_runs

__all__ = [
    "AdsData",
    "AdsResult",
    "Options",
    "Rates",
    "RunFacts",
    "analyse",
    "load_files",
    "load_rates",
    "read_runs",
]
