"""Correlate a run directory: its event log against its captures, written to ``analysis/``.

Outputs (CSV and Parquet of each table, written atomically): ``utterances``, ``endpoints``,
``activations``, ``contacts`` (every contact episode, for the report's raster), and
``summary.json``. Instants are epoch seconds; ``*_capture`` columns are on the capture clock,
the others on the bench clock.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.bench.events import (
    AnswerHeard,
    RunStarted,
    StopSpoken,
    UtteranceEnded,
    UtteranceStarted,
    read_events,
)
from harness.bench.manifest import MANIFEST_NAME, read_manifest
from harness.classify import classify_name
from harness.correlate.activations import (
    ActivationResult,
    DetectorSettings,
    detect_activations,
)
from harness.correlate.attribution import (
    AttributionSettings,
    attribute,
    contact_episodes,
    contact_times,
)
from harness.correlate.capture import CaptureView, read_capture
from harness.correlate.clock import (
    ClockAlignment,
    fit_alignment,
    host_alignment,
    manual_alignment,
)
from harness.errors import HarnessError, InputError
from harness.files import (
    PRIVATE_FILE,
    atomic_write_bytes,
    atomic_write_text,
    private_dir,
)

ANALYSIS = "analysis"
MAX_LAG_S = 8.0  # an activation later than this after an onset is not that utterance's
CLASS_FIELDS = ["registrable_domain", "organization", "party", "category", "ad_or_tracking"]
UTTERANCE_COLUMNS = [
    "persona_id", "skill_id", "skill_name", "utterance_id", "plan_index", "turn", "attempt", "text",
    "onset", "end", "onset_capture", "answer_onset", "answer_duration_s", "activation", "activation_onset",
    "activation_lag_s", "activation_bytes_up", "endpoints", "scores",
]  # fmt: skip
ENDPOINT_COLUMNS = [
    "skill_id", "skill_name", "endpoint", *CLASS_FIELDS, "utterances", "contacted", "contact_rate",
    "background_rate", "caused_rate", "response_from_s", "response_to_s", "other_skills_rate", "p_value",
    "p_adjusted", "attributed",
]  # fmt: skip
ACTIVATION_COLUMNS = ["onset", "end", "bytes_up", "bursts", "endpoints", "utterance"]
CONTACT_COLUMNS = ["endpoint", "onset", "end", "bytes_up", "packets", "category", "ad_or_tracking"]


@dataclass
class Correlation:
    run_id: str
    device: str | None
    captures: list[str]
    clock: ClockAlignment
    detection: ActivationResult
    utterances: pd.DataFrame
    endpoints: pd.DataFrame
    activations: pd.DataFrame
    contacts: pd.DataFrame
    background_s: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        u, e = self.utterances, self.endpoints
        attributed = e[e["attributed"]] if len(e) else e
        return {
            "run_id": self.run_id,
            "device": self.device,
            "captures": self.captures,
            "counts": {
                "utterances": len(u),
                "activations": len(self.activations),
                "utterances_with_activation": int(u["activation"].sum()) if len(u) else 0,
                "activations_without_utterance": int(self.activations["utterance"].isna().sum()) if len(self.activations) else 0,
                "endpoints": int(self.contacts["endpoint"].nunique()) if len(self.contacts) else 0,
                "attributed_pairs": len(attributed),
                "attributed_ad_or_tracking": int(attributed["ad_or_tracking"].sum()) if len(attributed) else 0,
                "background_s": round(self.background_s, 3),
            },
            "clock": self.clock.model_dump(),
            "activations": {
                "threshold_bps": self.detection.threshold_bps,
                "voice_endpoints": self.detection.voice_endpoints,
                "voice_source": self.detection.voice_source,
            },
            "warnings": self.warnings,
        }


def _seconds(ns: Any) -> float | None:
    return None if ns is None or pd.isna(ns) else int(ns) / 1e9


def classify_columns(names: pd.Series) -> pd.DataFrame:
    """The classification fields of each endpoint name."""
    found = {n: classify_name(n) for n in names.unique()}
    return pd.DataFrame({f: [getattr(found[n], f) for n in names] for f in CLASS_FIELDS}, index=names.index)


def capture_paths(run_dir: Path, given: Sequence[str] | None) -> list[str]:
    if given:
        return list(given)
    manifest = read_manifest(run_dir)
    if not manifest.captures:
        raise InputError(run_dir / MANIFEST_NAME, "the run lists no capture files; give them with --pcap")
    return [str(c.path if Path(c.path).is_absolute() else run_dir / c.path) for c in manifest.captures]


def _spoken(run_dir: Path) -> tuple[str, pd.DataFrame, np.ndarray]:
    """Run id, one row per played turn (bench clock, ns) with its answer, and the onsets of the
    stop phrases spoken (bench clock, ns): requests too, though no utterance of the plan."""
    path = run_dir / "events.jsonl"
    if not path.is_file():
        raise InputError(path, "no event log: not a run directory")
    logged = read_events(path).events
    run_id = next((e.run_id for e in logged if isinstance(e, RunStarted)), logged[0].run_id if logged else "")
    started = {e.seq: e for e in logged if isinstance(e, UtteranceStarted)}
    answers = {e.started_seq: e for e in logged if isinstance(e, AnswerHeard)}
    rows = []
    for e in logged:
        if not isinstance(e, UtteranceEnded):
            continue
        s, a = started.get(e.started_seq), answers.get(e.started_seq)
        rows.append(
            {
                "persona_id": e.persona_id, "skill_id": e.skill_id, "skill_name": s.skill_name if s else e.skill_id,
                "utterance_id": e.utterance_id, "plan_index": e.plan_index, "turn": e.turn, "attempt": e.attempt,
                "text": s.text if s else "", "onset_ns": e.onset_wall_ns, "end_ns": e.end_wall_ns,
                "answer_onset_ns": a.onset_wall_ns if a else None, "answer_duration_s": a.duration_s if a else None,
            }
        )  # fmt: skip
    stops = np.array([e.onset_wall_ns for e in logged if isinstance(e, StopSpoken)], np.int64)
    return run_id, pd.DataFrame(rows), stops


def align(view: CaptureView, run_id: str, clock_offset: float | None, warnings: list[str]) -> ClockAlignment:
    """The clock mapping: --clock-offset, else a fit to this run's markers, else the host clocks."""
    if clock_offset is not None:
        return manual_alignment(clock_offset)
    mine = [(seen, m) for seen, m in view.markers if m.run_id == run_id]
    if len(mine) < len(view.markers):
        warnings.append(f"{len(view.markers) - len(mine)} sync markers of other runs ignored")
    if not mine:
        warnings.append("no sync markers in the capture: taking the bench and capture clocks as one (offset 0)")
        return host_alignment()
    return fit_alignment([m.sent_wall_ns for _, m in mine], [seen for seen, _ in mine])


def correlate_run(
    run_dir: str | Path,
    pcaps: Sequence[str] | None = None,
    clock_offset: float | None = None,
    device: str | None = None,
    detector: DetectorSettings | None = None,
    settings: AttributionSettings | None = None,
) -> Correlation:
    """Correlate one run directory; captures default to the manifest's, the device to the one the run captured."""
    settings = settings or AttributionSettings()
    run_dir = Path(run_dir)
    run_id, spoken, stops = _spoken(run_dir)
    paths = capture_paths(run_dir, pcaps)
    if device is None and (run_dir / MANIFEST_NAME).is_file():
        device = read_manifest(run_dir).settings.capture_device
    view = read_capture(paths, device)
    warnings = list(view.warnings)
    clock = align(view, run_id, clock_offset, warnings)
    if spoken.empty:
        warnings.append("the run logged no spoken utterances")
        spoken = pd.DataFrame(columns=["persona_id", "skill_id", "skill_name", "utterance_id", "plan_index", "turn",
                                       "attempt", "text", "onset_ns", "end_ns", "answer_onset_ns", "answer_duration_s"])  # fmt: skip
    spoken["onset_capture_ns"] = clock.to_capture_ns(spoken["onset_ns"].to_numpy(np.int64))
    # every request the bench spoke starts its own activation, the stop phrase included
    requests = np.sort(np.concatenate([spoken["onset_capture_ns"].to_numpy(np.int64), clock.to_capture_ns(stops)]))
    detection = detect_activations(view, detector, requests)
    warnings.extend(detection.warnings)
    matched = _match_activations(spoken["onset_capture_ns"].to_numpy(np.int64), detection, settings.lead_s)
    episodes = contact_episodes(view.packets, detection.voice_endpoints, detection.activations, settings.episode_gap_s)
    times = contact_times(view.packets, detection.voice_endpoints, detection.activations, settings.contact_slot_s)
    result = attribute(spoken["onset_capture_ns"].tolist(), spoken["skill_id"].tolist(), times, (view.first_ns, view.last_ns), settings)
    if result.background_s < settings.max_window_s:
        warnings.append(f"only {result.background_s:.1f} s of background traffic outside utterance windows: scores and p-values are weak")
    utterances = _utterance_table(spoken, detection, matched, result.contacts)
    endpoints = _endpoint_table(spoken, result.skills)
    activations = pd.DataFrame(
        [
            {"onset": a.onset_ns / 1e9, "end": a.end_ns / 1e9, "bytes_up": a.bytes_up, "bursts": a.bursts,
             "endpoints": list(a.endpoints), "utterance": matched.get(i)}
            for i, a in enumerate(detection.activations)
        ],
        columns=ACTIVATION_COLUMNS,
    )  # fmt: skip
    contacts = episodes.assign(onset=episodes["onset_ns"] / 1e9, end=episodes["end_ns"] / 1e9)
    contacts = pd.concat([contacts, classify_columns(contacts["endpoint"])[["category", "ad_or_tracking"]]], axis=1)
    contacts.loc[contacts["endpoint"].isin(detection.voice_endpoints), "category"] = "voice"  # found by its bursts
    return Correlation(
        run_id, view.device, [str(p) for p in paths], clock, detection, utterances, endpoints, activations,
        contacts[CONTACT_COLUMNS], result.background_s, warnings,
    )  # fmt: skip


def _match_activations(onsets: np.ndarray, detection: ActivationResult, lead_s: float) -> dict[int, int]:
    """activation index -> utterance row: each activation to the latest onset before it (within the lag)."""
    matched: dict[int, int] = {}
    order = np.argsort(onsets, kind="stable")
    for i, a in enumerate(detection.activations):
        before = [j for j in order if onsets[j] - lead_s * 1e9 <= a.onset_ns <= onsets[j] + MAX_LAG_S * 1e9]
        free = [j for j in before if j not in matched.values()]
        if free:
            matched[i] = int(free[-1])
    return matched


def _utterance_table(spoken: pd.DataFrame, detection: ActivationResult, matched: dict[int, int], contacts: pd.DataFrame) -> pd.DataFrame:
    by_row = {row: detection.activations[i] for i, row in matched.items()}
    attributed = contacts[contacts["attributed"]].sort_values(["utterance", "score"], ascending=[True, False])
    listed = {u: (g["endpoint"].tolist(), [round(s, 4) for s in g["score"]]) for u, g in attributed.groupby("utterance")}
    rows = []
    for row, r in enumerate(spoken.itertuples(index=False)):
        a = by_row.get(row)
        names, scores = listed.get(row, ([], []))
        rows.append(
            {
                "persona_id": r.persona_id, "skill_id": r.skill_id, "skill_name": r.skill_name,
                "utterance_id": r.utterance_id, "plan_index": r.plan_index, "turn": r.turn, "attempt": r.attempt,
                "text": r.text, "onset": _seconds(r.onset_ns), "end": _seconds(r.end_ns),
                "onset_capture": _seconds(r.onset_capture_ns), "answer_onset": _seconds(r.answer_onset_ns),
                "answer_duration_s": r.answer_duration_s, "activation": a is not None,
                "activation_onset": a.onset_ns / 1e9 if a else None,
                "activation_lag_s": (a.onset_ns - r.onset_capture_ns) / 1e9 if a else None,
                "activation_bytes_up": a.bytes_up if a else None, "endpoints": names, "scores": scores,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=UTTERANCE_COLUMNS)


def _endpoint_table(spoken: pd.DataFrame, skills: pd.DataFrame) -> pd.DataFrame:
    if skills.empty:
        return pd.DataFrame(columns=ENDPOINT_COLUMNS)
    names = spoken.drop_duplicates("skill_id").set_index("skill_id")["skill_name"]
    table = skills.rename(columns={"skill": "skill_id"})
    table["skill_name"] = table["skill_id"].map(names)
    table = pd.concat([table, classify_columns(table["endpoint"])], axis=1)
    return table[ENDPOINT_COLUMNS]


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists joined with ';' (CSV has no lists; Parquet keeps them)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, list)).any():
            out[col] = out[col].map(lambda v: ";".join(map(str, v)) if isinstance(v, list) else v)
    return out


def write_analysis(run_dir: str | Path, result: Correlation) -> list[Path]:
    """Write the tables (CSV + Parquet) and ``summary.json`` into ``RUN_DIR/analysis/``."""
    folder = private_dir(Path(run_dir) / ANALYSIS)
    written = []
    tables = {"utterances": result.utterances, "endpoints": result.endpoints, "activations": result.activations, "contacts": result.contacts}
    for name, frame in tables.items():
        written.append(atomic_write_text(folder / f"{name}.csv", _csv_ready(frame).to_csv(index=False), PRIVATE_FILE))
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        written.append(atomic_write_bytes(folder / f"{name}.parquet", buffer.getvalue(), PRIVATE_FILE))
    written.append(atomic_write_text(folder / "summary.json", json.dumps(result.summary(), indent=2, ensure_ascii=False) + "\n", PRIVATE_FILE))
    return written


def read_analysis(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """``summary.json`` and the Parquet tables written by :func:`write_analysis`."""
    folder = Path(run_dir) / ANALYSIS
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise HarnessError(f"{folder}: no analysis yet (run `harness correlate {run_dir}`)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(summary_path, f"not valid JSON: {exc.msg}") from None
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("utterances", "endpoints", "activations", "contacts")}
    return summary, tables
