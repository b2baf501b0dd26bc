"""``manifest.json`` of a crawl: what it was made of, rewritten atomically at start, resume and end.

A resume reads everything back from it (the sites, personas, profiles and settings), so a crawl
continues exactly as it began even if the sites file changed meanwhile.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from harness.crawl.layout import CrawlDir
from harness.defaults import default
from harness.files import atomic_write_text
from harness.rundir.document import read_document

FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrawlSettings(_Model):
    jobs: int = Field(2, ge=1, description="pages open at once per persona")
    visit_timeout_s: float = Field(60.0, gt=0, description="a visit not done by then is logged 'timeout'")
    load_timeout_s: float = Field(30.0, gt=0, description="waiting for the page's load event")
    auction_timeout_s: float = Field(8.0, gt=0, description="waiting for Prebid's auction to end, per auction")
    settle_s: float = Field(1.0, ge=0, description="after the auction, time for ads to render")
    screenshots: bool = False
    headless: bool = True
    third_party_cookies: bool = Field(True, description="allow third-party cookies (bidders' own cookies)")
    browser_args: list[str] = Field(default_factory=list, description="extra Chromium command-line flags")
    executable: str = default.chromium


class PersonaEntry(_Model):
    name: str
    profile: str = Field(description="the persona's browser profile folder, relative to the profiles folder")


class Versions(_Model):
    harness: str = ""
    playwright: str = ""
    chromium: str = ""
    prebid: list[str] = Field(default_factory=list, description="Prebid.js versions seen on the pages")


class CrawlManifest(_Model):
    format_version: int = FORMAT_VERSION
    crawl_id: str
    created_ns: int
    sites_file: str
    sites_sha256: str
    sites: list[str]
    profiles: str = Field(description="the folder holding one profile folder per persona")
    personas: list[PersonaEntry]
    settings: CrawlSettings
    versions: Versions = Field(default_factory=Versions)
    starts_ns: list[int] = Field(default_factory=list, description="when the crawl started and each resume")
    completed_ns: int | None = None


def write_manifest(crawl: CrawlDir, manifest: CrawlManifest) -> None:
    atomic_write_text(crawl.manifest, manifest.model_dump_json(indent=2) + "\n")


def read_manifest(crawl: CrawlDir) -> CrawlManifest:
    return read_document(crawl.manifest, CrawlManifest, "crawl manifest")
