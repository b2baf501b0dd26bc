"""The analysis contract: the tables (defined in :mod:`harness.rundir.tables`) and ``summary.json``
that correlation writes into ``analysis/``, read and written here.

One definition for every table, the way a measurement platform keeps one schema file for its
Parquet tables; ``pd.read_parquet`` gives their dtypes back as they are.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import HarnessError, InputError
from harness.files import PRIVATE_FILE, atomic_write_bytes, atomic_write_text
from harness.rundir.document import read_document
from harness.rundir.layout import RunDir
from harness.rundir.tables import TABLE_NAMES, TABLES, conform
from harness.textsafe import csv_safe_frame

# ----- summary.json ------------------------------------------------------------------------------


class ClockAlignment(BaseModel):
    """How the bench clock maps onto the capture clock:
    ``capture_ns = bench_ns + offset + drift * (bench_ns - reference)``."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["markers", "manual", "host", "activations"] = Field(
        description="markers: fitted to sync markers; activations: fitted to utterance onsets against detected "
        "activations; manual: --clock-offset; host: both clocks taken as one"
    )
    offset_s: float = Field(description="capture clock minus bench clock at the reference instant")
    drift_ppm: float = Field(0.0, description="how fast the capture clock gains on the bench clock, parts per million")
    reference_ns: int = Field(0, description="bench instant the offset holds at (the first pair)")
    markers: int = Field(0, description="marker pairs used (method markers)")
    matched: int = Field(0, description="utterance-activation pairs used (method activations)")
    confidence: float | None = Field(
        None, description="activations: share of utterances matched, discounted by the best rival offset"
    )
    jitter_p50_s: float | None = Field(None, description="median absolute residual of the fit")
    jitter_p99_s: float | None = Field(None, description="99th percentile absolute residual")
    jitter_max_s: float | None = Field(None, description="largest absolute residual")

    def to_capture_ns(self, bench_ns: int | np.ndarray) -> int | np.ndarray:
        """A bench-clock instant (or array of them) on the capture clock."""
        elapsed = np.asarray(bench_ns, np.int64) - self.reference_ns
        shift = np.round(self.offset_s * 1e9 + self.drift_ppm * 1e-6 * elapsed).astype(np.int64)
        shifted = np.asarray(bench_ns, np.int64) + shift
        return int(shifted) if np.ndim(shifted) == 0 else shifted


class Counts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    utterances: int = Field(description="spoken tries")
    activations: int
    utterances_with_activation: int
    activations_without_utterance: int = Field(description="activations no try of the run explains")
    endpoints: int = Field(description="endpoints the device contacted")
    attributed_pairs: int = Field(description="(skill, endpoint) pairs attributed")
    attributed_ad_or_tracking: int
    background_s: float = Field(description="capture seconds outside every utterance window")


class DetectionInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold_bps: float = Field(description="upstream rate above which the device counts as streaming")
    voice_endpoints: list[str] = Field(description="endpoint ids taken as the voice service")
    voice_source: str = Field(description="how they were found")


class AnswerCounts(BaseModel):
    """Did the utterances reach their skill: each plan item's opening turn, its final try (the
    last one not superseded), checked against the utterance's ``expect``."""

    model_config = ConfigDict(extra="forbid")

    utterances: int = Field(description="plan items spoken (their final try)")
    with_expect: int = Field(description="of them, utterances with an expect")
    matched: int = Field(description="answered, and the answer held a keyword or the regex: the skill was reached")
    not_matched: int = Field(description="answered, but neither a keyword nor the regex was heard")
    no_answer: int = Field(description="no answer came (after every retry)")
    unchecked: int = Field(description="no expect, or the answer was not transcribed")
    reached_skill_rate: float | None = Field(
        description="matched / (matched + not_matched + no_answer); null when none was checked"
    )
    superseded_tries: int = Field(0, description="tries a resume replaced (they stay in the utterances table)")
    skipped_turns: int = Field(0, description="follow-ups not spoken because an earlier turn got no answer")


class Summary(BaseModel):
    """``analysis/summary.json``."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    device: str | None = Field(description="the device's address in the capture")
    captures: list[str] = Field(description="capture files read")
    counts: Counts
    clock: ClockAlignment
    activations: DetectionInfo
    answers: AnswerCounts | None = Field(None, description="answer checks; null in analyses made before them")
    warnings: list[str] = Field(default_factory=list)


# ----- reading and writing -----------------------------------------------------------------------


def _csv_ready(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Lists joined with ';' (CSV has no lists; Parquet keeps them); text that a spreadsheet would
    run as a formula gets a leading quote (see :mod:`harness.textsafe`)."""
    out = frame.copy()
    for col in TABLES[name]:
        if col.kind == "list":
            out[col.name] = out[col.name].map(lambda v: ";".join(map(str, v)))
    return csv_safe_frame(out)


def write_analysis(run: RunDir, summary: Summary, tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """Write every table (CSV + Parquet) and ``summary.json`` into the run's ``analysis/``, each
    atomically and private; returns the paths written."""
    run.create(run.analysis)
    written = []
    for name in TABLE_NAMES:
        frame = conform(name, tables[name])
        csv = run.table(name, "csv")
        atomic_write_text(csv, _csv_ready(frame, name).to_csv(index=False), PRIVATE_FILE)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        parquet = run.table(name, "parquet")
        atomic_write_bytes(parquet, buffer.getvalue(), PRIVATE_FILE)
        written += [str(csv), str(parquet)]
    atomic_write_text(run.summary, summary.model_dump_json(indent=2) + "\n", PRIVATE_FILE)
    return [*written, str(run.summary)]


def read_summary(run: RunDir) -> Summary:
    if not run.summary.is_file():
        raise HarnessError(f"{run.analysis}: no analysis yet (run `harness correlate {run.root}`)")
    return read_document(run.summary, Summary, "summary")


def has_analysis(run: RunDir) -> bool:
    return run.summary.is_file()


def read_analysis(run: RunDir) -> tuple[Summary, dict[str, pd.DataFrame]]:
    """``summary.json`` and every table, as :func:`write_analysis` wrote them."""
    summary = read_summary(run)
    tables = {}
    for name in TABLE_NAMES:
        path = run.table(name, "parquet")
        try:
            tables[name] = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot read the table: {exc}") from None
    return summary, tables


def summary_json_schema() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **Summary.model_json_schema()}


def analysis_json(summary: Summary, tables: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """The analysis as one JSON document (what ``--format json`` prints): the summary and each table's rows."""
    return {
        "summary": summary.model_dump(mode="json"),
        **{name: json.loads(conform(name, tables[name]).to_json(orient="records")) for name in TABLE_NAMES},
    }
