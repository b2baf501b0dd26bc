"""The campaign's dataset: one Parquet partition per persona and source, hive style.

```
<campaign>/dataset/persona=<id>/run=<source>/
  <table>.parquet         every table of harness.campaign.schema (empty where the source has none)
  _source.json            what the partition came from: each input file's size, mtime and sha256
```
A run directory's partition is named after its folder, a crawl's ``crawl-<folder>-<hash>``, an
ad file's ``ads-<name>-<hash>``. A partition is built in ``<campaign>/staging/`` and renamed
into place whole, so a reader never sees half of one; a partition whose inputs did not change
(sizes and mtimes) is kept as it is, so a new run adds its partition without redoing the rest.

A run without an up-to-date ``analysis/`` is correlated first (the analysis is written into the
run directory, as ``harness correlate`` does); its captures are read once for both the analysis
and the flows.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from pydantic import ValidationError

from harness.ads.currency import Rates
from harness.ads.ingest import load_files
from harness.campaign.manifest import Campaign, CampaignDir, SourceKind
from harness.campaign.schema import CRAWL_TABLES, TABLE_NAMES, TABLES, conform, empty, to_arrow
from harness.crawl.layout import CrawlDir
from harness.crawl.tables import MODELS as CRAWL_MODELS
from harness.errors import HarnessError, InputError, OutputError, Place, first_problem
from harness.files import PRIVATE_FILE, atomic_write_text, private_dir
from harness.jsonl import text_lines
from harness.rundir.layout import RunDir
from harness.rundir.tables import TABLE_NAMES as ANALYSIS_TABLES

SOURCE_FILE = "_source.json"
FORMAT = 1  # bumped when a partition's content changes for the same inputs
HASH_LIMIT = 64 << 20  # larger inputs (captures) are fingerprinted by size and mtime alone


class PartitionFailed(Exception):
    """A partition could not be built (one line; plain so it crosses process boundaries)."""


@dataclass(frozen=True)
class PartitionSpec:
    """One partition to build: the persona, the source and where it goes."""

    campaign: str
    persona: str
    kind: SourceKind
    source: str
    name: str
    device: str | None = None
    currency: str = "USD"

    @property
    def key(self) -> str:
        return f"persona={self.persona}/run={self.name}"


@dataclass
class Built:
    spec: PartitionSpec
    rows: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def partition_name(kind: SourceKind, stored: str) -> str:
    base = Path(stored).name
    if kind == "run":
        return base
    tag = hashlib.sha256(stored.encode()).hexdigest()[:6]
    return f"{kind}-{Path(base).stem}-{tag}"


def plan(folder: CampaignDir, campaign: Campaign) -> list[PartitionSpec]:
    """Every partition the manifest calls for."""
    specs = []
    for persona in campaign.personas:
        for kind in ("run", "crawl", "ads"):
            for stored in persona.sources(kind):
                specs.append(
                    PartitionSpec(
                        campaign=str(folder.root),
                        persona=persona.id,
                        kind=kind,
                        source=str(folder.resolve(stored)),
                        name=partition_name(kind, stored),
                        device=persona.bench.device,
                    )
                )
    return specs


def partition_dir(folder: CampaignDir, spec: PartitionSpec) -> Path:
    return folder.dataset / f"persona={spec.persona}" / f"run={spec.name}"


# ----- what a partition came from ---------------------------------------------------------------


def _inputs(spec: PartitionSpec) -> list[Path]:
    source = Path(spec.source)
    if spec.kind == "ads":
        return [source]
    if spec.kind == "crawl":
        return [CrawlDir(source).table(name) for name in CRAWL_MODELS]
    run = RunDir(source)
    tables = [run.table(name, "parquet") for name in ANALYSIS_TABLES]
    return [run.events, run.manifest, *run.capture_files(), run.summary, *tables]


def fingerprint(spec: PartitionSpec, with_hash: bool = False) -> dict[str, Any]:
    """Each input file's size and mtime (and sha256 of the small ones when ``with_hash``); absent files are null."""
    files: dict[str, Any] = {}
    for path in _inputs(spec):
        try:
            stat = path.stat()
        except OSError:
            files[str(path)] = None
            continue
        entry: dict[str, Any] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if with_hash and stat.st_size <= HASH_LIMIT:
            entry["sha256"] = _sha256(path)
        files[str(path)] = entry
    return {"format": FORMAT, "kind": spec.kind, "source": spec.source, "device": spec.device, "files": files}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _same(recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Same inputs: the sha256 taken at build time is provenance, not compared."""

    def strip(doc: dict[str, Any]) -> dict[str, Any]:
        files = {k: (v and {"size": v["size"], "mtime_ns": v["mtime_ns"]}) for k, v in doc.get("files", {}).items()}
        return {k: doc.get(k) for k in ("format", "kind", "source", "device")} | {"files": files}

    return strip(recorded) == strip(current)


def is_current(folder: CampaignDir, spec: PartitionSpec) -> bool:
    """The partition exists and its inputs did not change since it was built."""
    record = partition_dir(folder, spec) / SOURCE_FILE
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _same(recorded, fingerprint(spec))


# ----- building ----------------------------------------------------------------------------------


def pieces(spec: PartitionSpec) -> list[tuple[Any, Any]]:
    """The parts of a run's captures, each read as a task of its own (:func:`read_piece`) before
    :func:`build` puts them together; none for other sources, or where the captures cannot be
    listed (:func:`build` then reads them itself and reports the problem)."""
    if spec.kind != "run":
        return []
    from harness.correlate.capture import capture_parts
    from harness.correlate.run import capture_paths, has_capture

    try:
        run = RunDir.existing(Path(spec.source))
        if not has_capture(run):
            return []
        return [(read_piece, part) for part in capture_parts(capture_paths(run, None, []))]
    except (HarnessError, OSError):
        return []


def read_piece(part: Any) -> tuple[Any, Any]:
    """One part of a run's captures, read (one process: a Dask worker's task forks nothing): the
    part and its result."""
    from harness.correlate.capture import read_capture_part

    return part, read_capture_part(part)


def build(spec: PartitionSpec, *read: tuple[Any, Any]) -> Built:
    """Build one partition and put it in place (the unit of parallel work: picklable in, small out);
    ``read``: the (part, result) of every piece of :func:`pieces`, when they were read as tasks."""
    try:
        tables, warnings = _read_source(spec, list(read))
        rows = _commit(spec, tables)
    except (HarnessError, OSError, ValueError) as exc:
        raise PartitionFailed(f"{spec.key}: {exc}") from None
    return Built(spec, rows, warnings)


def _read_source(spec: PartitionSpec, read: list[tuple[Any, Any]]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    if spec.kind == "run":
        return _run_tables(Path(spec.source), spec.device, read)
    if spec.kind == "crawl":
        return _crawl_tables(Path(spec.source), spec.persona, spec.currency)
    return _ads_tables(Path(spec.source), spec.persona, spec.currency)


def _run_tables(
    root: Path, device: str | None, read: list[tuple[Any, Any]]
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The run's tables; its captures from the parts in ``read`` when given (see :func:`pieces`)."""
    # correlate is a stage before this one; imported here so `harness --help` stays light
    from harness.correlate.capture import capture_from_parts, read_capture
    from harness.correlate.run import capture_paths, correlate_run, has_capture, timings_only
    from harness.rundir.analysis import has_analysis, read_analysis, write_analysis
    from harness.rundir.manifest import read_manifest

    run = RunDir.existing(root)
    warnings: list[str] = []
    fresh = has_analysis(run) and _newer_than_inputs(run)
    flows = pd.DataFrame()
    if not has_capture(run):
        summary, tables = read_analysis(run) if fresh else timings_only(run.root)
    else:
        paths = capture_paths(run, None, warnings)
        device = device or read_manifest(run).settings.capture_device
        plan = [part for part, _ in read]
        if read and [Path(p) for p in dict.fromkeys(part.path for part in plan)] == [Path(p) for p in paths]:
            view = capture_from_parts(paths, device, plan, [result for _, result in read])
        else:
            view = read_capture(paths, device, jobs=1)  # a Dask worker forks no processes of its own
        if fresh:
            summary, tables = read_analysis(run)
        else:
            result = correlate_run(run.root, device=device, view=view)
            summary, tables = result.summary, result.tables
            try:
                write_analysis(run, summary, tables)
            except OutputError as exc:
                warnings.append(f"analysis not saved in the run directory: {exc}")
        flows = _flow_table(summary.run_id, view.flows)
    out = {name: tables[name] for name in ANALYSIS_TABLES}
    out["flows"] = flows if len(flows.columns) else empty("flows")
    return out, warnings + [f"{run.root}: {w}" for w in summary.warnings]


def _newer_than_inputs(run: RunDir) -> bool:
    made = run.summary.stat().st_mtime_ns
    inputs = [run.events, run.manifest, *run.capture_files()]
    return all(p.stat().st_mtime_ns <= made for p in inputs if p.exists())


def _flow_table(run_id: str, flows: pd.DataFrame) -> pd.DataFrame:
    table = flows.rename(
        columns={"first_ns": "first_capture_ns", "last_ns": "last_capture_ns", "endpoint": "endpoint_id"}
    )
    return conform("flows", table.assign(run_id=run_id))


def _jsonl_rows(path: Path, persona: str, model: Any) -> list[dict[str, Any]]:
    """The persona's records of a crawl file, each validated by its model (line numbers as editors count)."""
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(path, "not UTF-8 text", Place(offset=exc.start)) from None
    rows = []
    lines = text_lines(text)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                continue  # the last line torn by a crawl killed mid-write
            raise InputError(path, f"not a JSON record: {exc.msg}", Place(line=number, column=exc.colno)) from None
        if not isinstance(record, dict) or record.get("persona") != persona:
            continue
        try:
            rows.append(model.model_validate(record).model_dump())
        except ValidationError as exc:
            raise InputError(path, f"not a valid record: {first_problem(exc)}", Place(line=number, column=1)) from None
    return rows


def _crawl_tables(root: Path, persona: str, currency: str) -> tuple[dict[str, pd.DataFrame], list[str]]:
    if not root.is_dir():
        raise HarnessError(f"{root}: not a directory")
    crawl = CrawlDir(root)
    tables = {name: empty(name) for name in TABLE_NAMES}
    for name, model in CRAWL_TABLES.items():
        rows = _jsonl_rows(crawl.table(name), persona, model)
        if rows:
            tables[name] = conform(name, pd.DataFrame(rows))
    warnings = []
    bids = crawl.table("bids")
    if bids.is_file():
        tables["bids"], warnings = _bid_table(bids, persona, currency)
    if not any(len(t) for t in tables.values()):
        warnings.append(f"{root}: no rows of persona {persona!r}")
    return tables, warnings


def _ads_tables(path: Path, persona: str, currency: str) -> tuple[dict[str, pd.DataFrame], list[str]]:
    tables = {name: empty(name) for name in TABLE_NAMES}
    data = load_files([path], Rates(target=currency))
    warnings = [str(e) for e in data.skipped[:5]]
    for name, rows in (("bids", data.bids), ("audio_ads", data.audio_ads), ("interests", data.interests)):
        mine = [r.model_dump() for r in rows if r.persona == persona]
        if mine:
            tables[name] = conform(name, pd.DataFrame(mine).assign(source=str(path)))
    if not any(len(t) for t in tables.values()):
        warnings.append(f"{path}: no rows of persona {persona!r}")
    return tables, warnings


def _bid_table(path: Path, persona: str, currency: str) -> tuple[pd.DataFrame, list[str]]:
    data = load_files([path], Rates(target=currency))
    rows = [b.model_dump() for b in data.bids if b.persona == persona]
    table = conform("bids", pd.DataFrame(rows).assign(source=str(path))) if rows else empty("bids")
    return table, [str(e) for e in data.skipped[:5]]


def _commit(spec: PartitionSpec, tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Write the partition in staging, then swap it into place (never half visible)."""
    folder = CampaignDir(spec.campaign)
    final = partition_dir(folder, spec)
    work = private_dir(folder.staging) / f"{spec.persona}.{spec.name}.{uuid.uuid4().hex[:8]}"
    private_dir(work)
    try:
        rows = {}
        for name in TABLE_NAMES:
            frame = tables.get(name)
            frame = empty(name) if frame is None else frame
            target = work / f"{name}.parquet"
            pq.write_table(to_arrow(name, frame), target)
            os.chmod(target, PRIVATE_FILE)
            rows[name] = len(frame)
        source = fingerprint(spec, with_hash=True) | {"rows": rows}
        atomic_write_text(work / SOURCE_FILE, json.dumps(source, indent=2) + "\n")
        private_dir(final.parent)
        old = None
        if final.exists():
            old = work.with_name(work.name + ".old")
            os.rename(final, old)
        os.rename(work, final)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return rows


def remove_stale(folder: CampaignDir, specs: list[PartitionSpec]) -> list[str]:
    """Drop partitions no source of the manifest calls for (and leftovers of a crash in staging)."""
    wanted = {partition_dir(folder, s) for s in specs}
    dropped = []
    for part in partitions(folder):
        if part not in wanted:
            shutil.rmtree(part)
            dropped.append(f"{part.parent.name}/{part.name}")
    if folder.staging.is_dir():
        shutil.rmtree(folder.staging)
    return dropped


def partitions(folder: CampaignDir) -> Iterator[Path]:
    if not folder.dataset.is_dir():
        return
    for persona in sorted(folder.dataset.glob("persona=*")):
        yield from sorted(p for p in persona.glob("run=*") if p.is_dir())


# ----- reading -----------------------------------------------------------------------------------


def table_files(folder: CampaignDir, name: str) -> list[Path]:
    return [p / f"{name}.parquet" for p in partitions(folder) if (p / f"{name}.parquet").is_file()]


def load_table(folder: str | Path | CampaignDir, name: str) -> pd.DataFrame:
    """One table of the whole campaign in pandas, with the ``persona`` and ``run`` columns."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from harness.campaign.schema import arrow_schema

    folder = folder if isinstance(folder, CampaignDir) else CampaignDir(folder)
    if name not in TABLES:
        raise HarnessError(f"no table {name!r} (tables: {', '.join(TABLE_NAMES)})")
    files = table_files(folder, name)
    schema = arrow_schema(name).append(pa.field("persona", pa.string())).append(pa.field("run", pa.string()))
    if not files:
        return schema.empty_table().to_pandas()
    hive = ds.partitioning(pa.schema([("persona", pa.string()), ("run", pa.string())]), flavor="hive")
    data = ds.dataset([str(f) for f in files], format="parquet", partitioning=hive, schema=schema)
    return data.to_table().to_pandas()


def connect(folder: str | Path | CampaignDir) -> Any:
    """An in-memory DuckDB connection with every table of the dataset as a view over its Parquet files."""
    import duckdb

    folder = folder if isinstance(folder, CampaignDir) else CampaignDir(folder)
    con = duckdb.connect(":memory:")
    for name in TABLE_NAMES:
        files = table_files(folder, name)
        if files:
            listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "
                "hive_types = {'persona': VARCHAR, 'run': VARCHAR}, union_by_name = true)"
            )
        else:
            frame = load_table(folder, name)  # empty, with the table's columns and types
            con.register(f"_{name}_empty", frame)
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")
    return con


# ----- updating ----------------------------------------------------------------------------------


@dataclass
class Update:
    built: list[Built] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def update(
    folder: CampaignDir,
    campaign: Campaign,
    engine: Any,
    force: bool = False,
    on_done: Any = None,
) -> Update:
    """Bring the dataset up to the manifest: build the partitions whose inputs changed (or all
    with ``force``) on ``engine`` (:class:`harness.campaign.engine.Engine`), keep the others,
    drop those of sources no longer listed. A partition that fails keeps its previous version."""
    from harness.campaign import engine as engines

    with _locked(folder):
        specs = plan(folder, campaign)
        result = Update(dropped=remove_stale(folder, specs))
        todo = []
        for spec in specs:
            if not force and is_current(folder, spec):
                result.kept.append(spec.key)
            else:
                todo.append((spec.key, spec))
        outcome = engines.run(engine, build, todo, on_done, pieces)
        result.built, result.failed = outcome.done, outcome.failed
        if folder.staging.is_dir():
            shutil.rmtree(folder.staging, ignore_errors=True)
    return result


@contextmanager
def _locked(folder: CampaignDir) -> Iterator[None]:
    """One update of a campaign at a time (a second would clear the first's staging folder)."""
    fd = os.open(folder.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HarnessError(f"{folder.root}: another update of this campaign is running") from None
        yield
    finally:
        os.close(fd)
