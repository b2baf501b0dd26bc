"""The dataset's tables: one definition, reused from where each table's rows are defined.

- the run directory's analysis tables (``utterances``, ``activations``, ``endpoints``,
  ``attributions``, ``contacts``): :data:`harness.rundir.tables.TABLES` as they are;
- ``flows``: the device's flows of a run's captures, with their endpoint and owner;
- the crawl tables (``visits``, ``requests``, ``cookies``, ``storage``, ``sync``): the fields of
  the crawl's record models (:mod:`harness.crawl.records`), less ``persona`` (the partition);
- ``bids``, ``audio_ads``, ``interests``: a persona's rows of crawls and ad files, as ``harness ads``
  reads them (bids from a crawl's ``bids.jsonl`` and from bid files alike).

Every table also has the partition columns ``persona`` and ``run`` (hive style: the folders
``persona=<id>/run=<source>``), which DuckDB and pyarrow add when they read the dataset.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel

from harness.ads.models import AudioAd, Interest
from harness.crawl.tables import MODELS as CRAWL_MODELS
from harness.rundir.tables import TABLES as RUN_TABLES
from harness.rundir.tables import Column, Kind, conform_columns

PARTITION_KEYS = ("persona", "run")
# a crawl's tables and their record models, less the bids (read as `harness ads` reads them)
CRAWL_TABLES: dict[str, type[BaseModel]] = {name: model for name, model in CRAWL_MODELS.items() if name != "bids"}

FLOWS = [
    Column("run_id", "str", "the run"),
    Column("protocol", "str", "tcp, udp, ..."),
    Column("local_ip", "str", "the device's address"),
    Column("local_port", "int", "the device's port"),
    Column("remote_ip", "str", "the remote address"),
    Column("remote_port", "int", "the remote port"),
    Column("first_capture_ns", "int", "first packet (capture clock)"),
    Column("last_capture_ns", "int", "last packet (capture clock)"),
    Column("packets_up", "int", "packets the device sent"),
    Column("packets_down", "int", "packets the device received"),
    Column("bytes_up", "int", "bytes the device sent"),
    Column("bytes_down", "int", "bytes the device received"),
    Column("name", "str", "the flow's name (DNS, SNI, HTTP, QUIC, certificate); empty when unnamed"),
    Column("name_source", "str", "how it was named"),
    Column("endpoint_id", "str", "its endpoint (endpoints.endpoint_id): the name, else the remote address"),
    Column("owner", "str", "who the endpoint belongs to; empty when nothing tells"),
    Column("service", "bool", "name service, DHCP or multicast discovery rather than a contact"),
]
SOURCE = Column("source", "str", "the file the row came from")
BIDS = [
    SOURCE,
    Column("site", "str", "the page"),
    Column("visit_time_ns", "int", "when the visit started (UTC epoch ns)"),
    Column("bidder", "str", "the bidder"),
    Column("cpm", "float", "CPM in the target currency"),
    Column("currency", "str", "the target currency"),
    Column("cpm_original", "float", "CPM as bid"),
    Column("currency_original", "str", "currency as bid"),
    Column("ad_unit", "str", "the ad slot"),
    Column("width", "int?", "slot width"),
    Column("height", "int?", "slot height"),
    Column("won", "bool", "the bid won its auction"),
]


def _kind(annotation: Any) -> Kind:
    """A record field's annotation as a column kind."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        inner = _kind(args[0])
        return "int?" if inner == "int" else inner
    if get_origin(annotation) is Literal or annotation is str:
        return "str"
    if get_origin(annotation) is list:
        return "list"
    return {int: "int", float: "float", bool: "bool"}[annotation]


def record_columns(model: type[BaseModel]) -> list[Column]:
    """A record model's fields as columns, less the persona (the partition says it)."""
    return [
        Column(name, _kind(field.annotation), field.description or "")
        for name, field in model.model_fields.items()
        if name != "persona"
    ]


TABLES: dict[str, list[Column]] = {
    **RUN_TABLES,
    "flows": FLOWS,
    **{name: record_columns(model) for name, model in CRAWL_TABLES.items()},
    "bids": BIDS,
    "audio_ads": [SOURCE, *record_columns(AudioAd)],
    "interests": [SOURCE, *record_columns(Interest)],
}
TABLE_NAMES = tuple(TABLES)
RUN_TABLE_NAMES = (*RUN_TABLES, "flows")
_ARROW = {"str": pa.string(), "int": pa.int64(), "int?": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
_FLOAT_LISTS = {"scores"}  # list columns of numbers; the others hold text


def arrow_schema(name: str) -> pa.Schema:
    """The table's Parquet schema (list columns typed even when every list is empty)."""
    fields = []
    for col in TABLES[name]:
        if col.kind == "list":
            kind = pa.list_(pa.float64() if col.name in _FLOAT_LISTS else pa.string())
        else:
            kind = _ARROW[col.kind]
        fields.append(pa.field(col.name, kind, nullable=True))
    return pa.schema(fields)


def conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly the table's columns and dtypes."""
    return conform_columns(TABLES[name], name, frame)


def empty(name: str) -> pd.DataFrame:
    return conform(name, pd.DataFrame({c.name: [] for c in TABLES[name]}))


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(conform(name, frame), schema=arrow_schema(name), preserve_index=False)


def markdown() -> str:
    """Every table's columns as Markdown (what docs/campaign.md shows)."""
    parts = []
    for name, cols in TABLES.items():
        rows = "\n".join(f"| `{c.name}` | {c.kind} | {c.doc} |" for c in cols)
        parts.append(f"### `{name}`\n\n| column | type | meaning |\n|---|---|---|\n{rows}\n")
    return "\n".join(parts)
