"""Where everything of a crawl lives: the one place that knows the crawl directory's file names.

```
crawls/<crawl_id>/        0700
  manifest.json           settings, personas and profiles, sites + sha256, versions seen
  visits.jsonl            one Visit per (persona, site) done: the visit's commit record
  bids.jsonl              flat bid rows, as `harness ads` reads them
  requests.jsonl  cookies.jsonl  storage.jsonl   what the browser did during each visit
  sync.jsonl              identifier syncs found in the above (written by the sync detector)
  starts.jsonl            one line each time a visit starts (its attempt number)
  pending/                a finished visit's rows, waiting to be appended (write-ahead)
  screenshots/            ad slots, <persona>/<site_index>-<ad_unit>.png (with --screenshots)
  tables/                 each table as Parquet, written when the crawl completes
```
Paths stored inside the crawl's files are relative to the crawl directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.files import private_dir
from harness.rundir.layout import MANIFEST, new_run_id

#: The JSON-lines tables, one model each (harness.crawl.records), in the order a visit commits
#: them: the Visit record last, so a visit is done exactly when its Visit is on disk.
TABLES = ("bids", "requests", "cookies", "storage")
VISITS = "visits"
SYNC = "sync"
STARTS = "starts"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

new_crawl_id = new_run_id


def visit_id(persona: str, site_index: int) -> str:
    """The key every record of a visit carries."""
    return f"{persona}/{site_index}"


@dataclass(frozen=True)
class CrawlDir:
    """The paths of one crawl directory; creating it makes it private (0700)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def existing(cls, path: str | Path) -> CrawlDir:
        """A crawl directory that must already exist with its manifest (one line otherwise)."""
        crawl = cls(Path(path))
        if not crawl.manifest.is_file():
            raise HarnessError(f"{crawl.root}: not a crawl directory (no {MANIFEST})")
        return crawl

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def table(self, name: str) -> Path:
        """``<name>.jsonl``: one of TABLES, VISITS, SYNC or STARTS."""
        return self.root / f"{name}.jsonl"

    def parquet(self, name: str) -> Path:
        return self.root / "tables" / f"{name}.parquet"

    @property
    def pending(self) -> Path:
        return self.root / "pending"

    def pending_visit(self, persona: str, site_index: int) -> Path:
        return self.pending / f"{_SAFE.sub('_', persona)}-{site_index:05d}.json"

    @property
    def screenshots(self) -> Path:
        return self.root / "screenshots"

    def screenshot(self, persona: str, site_index: int, ad_unit: str) -> Path:
        return self.screenshots / persona / f"{site_index:05d}-{_SAFE.sub('_', ad_unit)[:80]}.png"

    def create(self) -> None:
        private_dir(self.root)
        private_dir(self.pending)

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))
