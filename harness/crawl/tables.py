"""Each JSON-lines table of a crawl as Parquet, for pandas (``tables/<name>.parquet``)."""

from __future__ import annotations

import io
from pathlib import Path

from pydantic import BaseModel

from harness.crawl.layout import SYNC, TABLES, VISITS, CrawlDir
from harness.crawl.records import CookieWrite, CrawlBid, Request, StorageWrite, SyncPair, Visit
from harness.files import atomic_write_bytes, private_dir
from harness.jsonl import read_jsonl

MODELS: dict[str, type[BaseModel]] = {
    VISITS: Visit,
    "bids": CrawlBid,
    "requests": Request,
    "cookies": CookieWrite,
    "storage": StorageWrite,
    SYNC: SyncPair,
}
assert set(MODELS) == {*TABLES, VISITS, SYNC}


def write_parquet(crawl: CrawlDir) -> list[Path]:
    """Write every table that exists as Parquet (columns in model order, atomically); the paths."""
    import pandas as pd

    written = []
    for name, model in MODELS.items():
        source = crawl.table(name)
        if not source.is_file():
            continue
        frame = pd.DataFrame(list(read_jsonl(source)), columns=list(model.model_fields))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        private_dir(crawl.parquet(name).parent)
        written.append(atomic_write_bytes(crawl.parquet(name), buffer.getvalue()))
    return written
