"""The campaign folder and its manifest, ``campaign.json``: who the personas are, which bench
each used, and the sources (run directories, crawl directories, ad files) of each.

```
<campaign>/               0700
  campaign.json           this manifest (rewritten atomically)
  dataset/                the Parquet dataset (see harness.campaign.dataset)
  tables/                 the study's tables (CSV)
  campaign.html           the campaign report
```
Source paths are stored as given (absolute, or relative to the campaign folder), so a campaign
folder kept beside its runs moves with them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import HarnessError, first_problem
from harness.files import PRIVATE_FILE, atomic_write_text, private_dir
from harness.rundir.document import read_document

MANIFEST = "campaign.json"
SourceKind = Literal["run", "crawl", "ads"]


class Bench(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(None, description="the Echo's address in the capture")
    capture: str | None = Field(None, description="the capture point: an interface or ssh://host/interface")


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="the persona id the scripts, crawls and ad files use")
    bench: Bench = Field(default_factory=Bench)
    runs: list[str] = Field(default_factory=list, description="run directories")
    crawls: list[str] = Field(default_factory=list, description="crawl directories (their rows of this persona)")
    ads: list[str] = Field(default_factory=list, description="bid files `harness ads` reads (this persona's rows)")

    @field_validator("id")
    @classmethod
    def _plain(cls, value: str) -> str:
        # the id names a partition folder (persona=<id>): no separators, no dot names
        if not value or value in {".", ".."} or any(c in value for c in "/\\=\0") or value != value.strip():
            raise ValueError(f"not a usable persona id: {value!r}")
        return value

    def sources(self, kind: SourceKind) -> list[str]:
        return {"run": self.runs, "crawl": self.crawls, "ads": self.ads}[kind]


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = 1
    name: str = ""
    control: str | None = Field(None, description="the control persona's id")
    personas: list[Persona] = Field(default_factory=list)

    def persona(self, persona_id: str) -> Persona:
        for persona in self.personas:
            if persona.id == persona_id:
                return persona
        known = ", ".join(p.id for p in self.personas) or "none"
        raise HarnessError(f"no persona {persona_id!r} in the campaign (personas: {known})")


class CampaignDir:
    """The paths of a campaign folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def staging(self) -> Path:
        """Partitions being built; renamed into ``dataset/`` when whole."""
        return self.root / "staging"

    @property
    def lock(self) -> Path:
        """Held while the dataset is being updated (one update at a time)."""
        return self.root / ".lock"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def report(self) -> Path:
        return self.root / "campaign.html"

    def resolve(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.root / path

    def stored(self, path: str | Path) -> str:
        """How a source path is written into the manifest: relative when it lies under the campaign folder."""
        absolute = Path(os.path.abspath(path))
        root = Path(os.path.abspath(self.root))
        return str(absolute.relative_to(root)) if absolute.is_relative_to(root) else str(absolute)


def init_campaign(root: str | Path, name: str = "") -> CampaignDir:
    folder = CampaignDir(root)
    if folder.manifest.exists():
        raise HarnessError(f"{folder.manifest}: a campaign is already there")
    private_dir(folder.root)
    save(folder, Campaign(name=name or folder.root.resolve().name))
    return folder


def load(root: str | Path) -> tuple[CampaignDir, Campaign]:
    folder = CampaignDir(root)
    if not folder.manifest.is_file():
        raise HarnessError(f"{folder.root}: not a campaign folder (run `harness campaign init {folder.root}`)")
    return folder, read_document(folder.manifest, Campaign, "campaign manifest")


def save(folder: CampaignDir, campaign: Campaign) -> None:
    atomic_write_text(folder.manifest, campaign.model_dump_json(indent=2) + "\n", PRIVATE_FILE)


def add_persona(campaign: Campaign, persona_id: str) -> Persona:
    """The persona, added when new."""
    try:
        return campaign.persona(persona_id)
    except HarnessError:
        try:
            persona = Persona(id=persona_id)
        except ValidationError as exc:
            raise HarnessError(first_problem(exc)) from None
        campaign.personas.append(persona)
        return persona


def add_source(folder: CampaignDir, campaign: Campaign, persona_id: str, kind: SourceKind, path: str | Path) -> bool:
    """Add a source to a persona (made when new); False when it was already listed."""
    source = Path(path)
    if kind in ("run", "crawl") and not source.is_dir():
        raise HarnessError(f"{source}: not a directory")
    if kind == "ads" and not source.is_file():
        raise HarnessError(f"{source}: no such file")
    persona = add_persona(campaign, persona_id)
    listed = persona.sources(kind)
    stored = folder.stored(source)
    if stored in listed:
        return False
    for other in campaign.personas:
        if kind == "run" and stored in other.runs:
            raise HarnessError(f"{source}: already a run of persona {other.id!r}")
    listed.append(stored)
    return True
