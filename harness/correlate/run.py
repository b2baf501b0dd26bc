"""Correlate a run directory: its event log against its captures, written to ``analysis/``.

The tables and ``summary.json`` follow the analysis contract of :mod:`harness.rundir.analysis`
(integer ``*_ns`` instants, stable keys); this module computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.bench.checks import answer_counts, check_logged, try_results, unchecked_answers, vocabulary
from harness.bench.plan import Plan, run_plan
from harness.bench.transcribe import Transcriber
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
    ONSET_TOLERANCE_S,
    WAKE_LAG_S,
    align_onsets,
    fit_alignment,
    host_alignment,
    manual_alignment,
    require_overlap,
)
from harness.errors import HarnessError, InputError
from harness.progress import Progress, no_progress
from harness.rundir.analysis import AnswerCounts, ClockAlignment, Counts, DetectionInfo, Summary
from harness.rundir.events import (
    AnswerChecked,
    AnswerHeard,
    Event,
    RunStarted,
    StopSpoken,
    UtteranceEnded,
    UtteranceStarted,
    read_events,
)
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest
from harness.rundir.tables import conform, empty_table

MAX_LAG_S = 8.0  # an activation later than this after an onset is not that utterance's
MIN_ONSET_CONFIDENCE = 0.5  # below it an onset fit is as likely a schedule's echo as the offset
SPOKEN_COLUMNS = [
    "utterance_seq",
    "kind",
    "plan_index",
    "turn",
    "attempt",
    "persona_id",
    "skill_id",
    "skill_name",
    "utterance_id",
    "text",
    "onset_ns",
    "end_ns",
    "answer_onset_ns",
    "answer_duration_s",
    "superseded",
    "final",
    "transcript",
    "expect_result",
    "matched_by",
]


@dataclass
class Correlation:
    """A correlated run: the summary and the tables of the analysis contract."""

    summary: Summary
    tables: dict[str, pd.DataFrame]
    detection: ActivationResult
    warnings: list[str] = field(default_factory=list)


def capture_paths(run: RunDir, given: Sequence[str] | None, warnings: list[str]) -> list[str]:
    """The captures to read: those given, else the manifest's (warning about files it lost, files
    a crash cut and capture files in the folder it does not list)."""
    if given:
        return list(given)
    manifest = read_manifest(run)
    listed = [c for c in manifest.captures if c.state != "missing"]
    for entry in manifest.captures:
        if entry.state == "missing":
            warnings.append(f"capture {entry.path} was started but its file never arrived (read without it)")
        elif entry.state == "writing":
            warnings.append(f"capture {entry.path} is still being written, or its run crashed and was not resumed")
    known = {run.resolve(c.path) for c in manifest.captures}
    for path in run.capture_files():
        if path not in known:
            warnings.append(f"{path} is in the capture folder but not in the manifest (not read; give it with --pcap)")
    if not listed:
        raise InputError(run.manifest, "the run lists no capture files; give them with --pcap")
    return [str(run.resolve(c.path)) for c in listed]


@dataclass
class Spoken:
    """What the bench played, from the run's log, with each try's answer check."""

    run_id: str
    table: pd.DataFrame
    answers: AnswerCounts


def _plan(run: RunDir, warnings: list[str]) -> Plan | None:
    if not run.manifest.is_file():
        return None
    try:
        return run_plan(run, read_manifest(run))
    except HarnessError as exc:
        warnings.append(f"the run's scripts cannot be read ({exc}): answers not checked against their expect")
        return None


def _offline_checks(
    run: RunDir, logged: list[Event], plan: Plan | None, warnings: list[str], progress: Progress
) -> list[AnswerChecked]:
    """Checks of the answers the run did not check itself (it ran without --transcribe, or was
    killed before its checker got to them), transcribed here from their WAVs."""
    todo = unchecked_answers(logged)
    if not todo or plan is None:
        return []
    transcriber = Transcriber(vocabulary(plan))  # loads in a fraction of a second
    checked = check_logged(run, todo, plan, transcriber, progress)
    if len(checked) < len(todo):
        warnings.append(f"{len(todo) - len(checked)} answer recordings are missing or unreadable: not checked")
    return checked


def _spoken(
    run: RunDir, transcribe: bool = True, warnings: list[str] | None = None, progress: Progress = no_progress
) -> Spoken:
    """One row per sound the bench played (bench clock, ns), in onset order: every try of the plan
    (``kind`` request, with its answer and its answer check) and every stop phrase (``kind``
    stop), which the device hears as a request too. Answers the run did not check are checked
    here (offline, from their WAVs) unless ``transcribe`` is false."""
    warnings = [] if warnings is None else warnings
    if not run.events.is_file():
        raise InputError(run.events, "no event log: not a run directory")
    logged = read_events(run.events).events
    run_id = next((e.run_id for e in logged if isinstance(e, RunStarted)), logged[0].run_id if logged else "")
    started = {e.seq: e for e in logged if isinstance(e, UtteranceStarted)}
    answers = {e.started_seq: e for e in logged if isinstance(e, AnswerHeard)}
    names = {e.skill_id: e.skill_name for e in started.values()}
    plan = _plan(run, warnings)
    extra = _offline_checks(run, logged, plan, warnings, progress) if transcribe else []
    results = try_results(logged, plan, extra)
    rows = []
    for e in logged:
        if isinstance(e, UtteranceEnded):
            seq, kind, s, a = e.started_seq, "request", started.get(e.started_seq), answers.get(e.started_seq)
            text = s.text if s else ""
        elif isinstance(e, StopSpoken):
            seq, kind, a, text = e.seq, "stop", None, e.text
        else:
            continue
        r = results.get(seq) if kind == "request" else None
        rows.append(
            {
                "utterance_seq": seq,
                "kind": kind,
                "plan_index": e.plan_index,
                "turn": e.turn,
                "attempt": e.attempt,
                "persona_id": e.persona_id,
                "skill_id": e.skill_id,
                "skill_name": names.get(e.skill_id, e.skill_id),
                "utterance_id": e.utterance_id,
                "text": text,
                "onset_ns": e.onset_wall_ns,
                "end_ns": e.end_wall_ns,
                "answer_onset_ns": a.onset_wall_ns if a else None,
                "answer_duration_s": a.duration_s if a else None,
                "superseded": r.superseded if r else False,
                "final": r.final if r else kind == "stop",
                "transcript": r.transcript if r else "",
                "expect_result": r.result if r else "unchecked",
                "matched_by": r.matched_by if r else "",
            }
        )
    spoken = pd.DataFrame(rows, columns=SPOKEN_COLUMNS).astype({"answer_onset_ns": "Int64"})
    table = spoken.sort_values("onset_ns", kind="stable").reset_index(drop=True)
    return Spoken(run_id, table, answer_counts(results.values(), logged))


def align(
    view: CaptureView,
    run_id: str,
    clock_offset: float | None,
    onsets_ns: np.ndarray,
    detector: DetectorSettings | None,
    warnings: list[str],
) -> ClockAlignment:
    """The clock mapping: --clock-offset, else a fit to this run's markers, else a fit of the
    utterance onsets (``onsets_ns``, bench clock) to the activations detected without them when it
    is confident and the host clocks disagree with it, else the host clocks."""
    if clock_offset is not None:
        return manual_alignment(clock_offset)
    mine = [(seen, m) for seen, m in view.markers if m.run_id == run_id]
    if len(mine) < len(view.markers):
        warnings.append(f"{len(view.markers) - len(mine)} sync markers of other runs ignored")
    if mine:
        return fit_alignment([m.sent_wall_ns for _, m in mine], [seen for seen, _ in mine])
    try:
        found = detect_activations(view, detector)
        fit = align_onsets(onsets_ns, [a.onset_ns for a in found.activations], lag_s=WAKE_LAG_S)
    except HarnessError as exc:
        warnings.append(f"no sync markers in the capture and {exc}: taking the bench and capture clocks as one")
        return host_alignment()
    if (fit.confidence or 0.0) < MIN_ONSET_CONFIDENCE:
        warnings.append(
            f"no sync markers in the capture; the onset fit is ambiguous (confidence {fit.confidence:.2f}): "
            "taking the bench and capture clocks as one"
        )
        return host_alignment()
    if abs(fit.offset_s) < ONSET_TOLERANCE_S:
        return host_alignment()  # the clocks agree within the wake-word jitter: no fit beats them
    warnings.append(
        f"no sync markers in the capture: clocks fitted from {fit.matched} utterance onsets "
        f"(offset {fit.offset_s:+.3f} s, confidence {fit.confidence:.2f})"
    )
    return fit


def correlate_run(
    run_dir: str | Path,
    pcaps: Sequence[str] | None = None,
    clock_offset: float | None = None,
    device: str | None = None,
    detector: DetectorSettings | None = None,
    settings: AttributionSettings | None = None,
    transcribe: bool = True,
    progress: Progress = no_progress,
    view: CaptureView | None = None,
) -> Correlation:
    """Correlate one run directory; captures default to the manifest's, the device to the one the
    run captured. Answers the run did not check are transcribed and checked unless ``transcribe``
    is false. ``progress`` hears each step (checking answers, reading captures, naming endpoints,
    aligning clocks, finding activations, attributing endpoints). ``view``: the captures already
    read with :func:`read_capture` (of ``pcaps``, or the manifest's), so a caller that needs the
    flows too reads them once."""
    settings = settings or AttributionSettings()
    run = RunDir.existing(run_dir)
    warnings: list[str] = []
    said = _spoken(run, transcribe, warnings, progress)
    run_id, spoken = said.run_id, said.table
    paths = capture_paths(run, pcaps, warnings)
    if device is None and run.manifest.is_file():
        device = read_manifest(run).settings.capture_device
    view = view or read_capture(paths, device, progress)
    warnings += view.warnings
    progress("aligning clocks")
    bench_onsets = spoken["onset_ns"].to_numpy(np.int64)
    clock = align(view, run_id, clock_offset, bench_onsets, detector, warnings)
    if spoken.empty:
        warnings.append("the run logged no spoken utterances")
    elif len(view.packets):
        require_overlap((int(bench_onsets[0]), int(spoken["end_ns"].max())), (view.first_ns, view.last_ns), clock)
    spoken["onset_capture_ns"] = clock.to_capture_ns(bench_onsets)
    # every sound the bench played starts its own activation, the stop phrase included
    progress("finding activations")
    detection = detect_activations(view, detector, spoken["onset_capture_ns"].to_numpy(np.int64))
    warnings.extend(detection.warnings)
    matched = _match_activations(spoken["onset_capture_ns"].to_numpy(np.int64), detection, settings.lead_s)
    progress("attributing endpoints")
    episodes = contact_episodes(view.packets, detection.voice_endpoints, detection.activations, settings.episode_gap_s)
    times = contact_times(view.packets, detection.voice_endpoints, detection.activations, settings.contact_slot_s)
    # skills are scored on the plan's requests; a stop phrase ends a session, it asks the skill nothing
    requests = spoken.index[spoken["kind"] == "request"].to_numpy()
    result = attribute(
        spoken["onset_capture_ns"].iloc[requests].tolist(),
        spoken["skill_id"].iloc[requests].tolist(),
        times,
        (view.first_ns, view.last_ns),
        settings,
    )
    result.contacts["utterance"] = requests[result.contacts["utterance"].to_numpy(int)] if len(requests) else []
    if result.background_s < settings.max_window_s:
        warnings.append(
            f"only {result.background_s:.1f} s of background traffic outside utterance windows: "
            "scores and p-values are weak"
        )
    endpoints = _endpoint_table(run_id, view, detection)
    tables = {
        "utterances": _utterance_table(run_id, spoken, detection, matched, result.contacts),
        "activations": activation_table(
            run_id, detection, {i: int(spoken["utterance_seq"].iat[row]) for i, row in matched.items()}
        ),
        "endpoints": endpoints,
        "attributions": _attribution_table(run_id, spoken.iloc[requests], result.skills),
        "contacts": _contact_table(run_id, view, episodes, endpoints, detection),
    }
    summary = Summary(
        run_id=run_id,
        device=view.device,
        captures=[str(p) for p in paths],
        clock=clock,
        counts=_counts(tables, result.background_s),
        activations=DetectionInfo(
            threshold_bps=detection.threshold_bps,
            voice_endpoints=detection.voice_endpoints,
            voice_source=detection.voice_source,
        ),
        answers=said.answers,
        warnings=warnings,
    )
    return Correlation(summary, tables, detection, warnings)


def _counts(tables: dict[str, pd.DataFrame], background_s: float) -> Counts:
    u, a, attributions = tables["utterances"], tables["activations"], tables["attributions"]
    hits = attributions[attributions["attributed"]]
    flagged = tables["endpoints"].set_index("endpoint_id")["ad_or_tracking"]
    return Counts(
        utterances=len(u),
        activations=len(a),
        utterances_with_activation=int(u["activation_id"].notna().sum()),
        activations_without_utterance=int(a["utterance_seq"].isna().sum()),
        endpoints=int(tables["contacts"]["endpoint_id"].nunique()),
        attributed_pairs=len(hits),
        attributed_ad_or_tracking=int(flagged.reindex(hits["endpoint_id"]).fillna(False).astype(bool).sum()),
        background_s=round(background_s, 3),
    )


def _match_activations(onsets: np.ndarray, detection: ActivationResult, lead_s: float) -> dict[int, int]:
    """activation index -> spoken row: each activation, in onset order, to the latest free onset
    before it (onset - lead <= activation <= onset + lag).

    One sweep: activations and onsets both sorted, the onsets an activation could reach are pushed
    on a stack as they come within reach; the top is the latest free one, and what sinks below it
    has fallen out of every later activation's reach too."""
    order = np.argsort(onsets, kind="stable")
    sorted_onsets = onsets[order]
    times = np.array([a.onset_ns for a in detection.activations], np.int64)
    lo = np.searchsorted(sorted_onsets, times - MAX_LAG_S * 1e9, side="left")
    hi = np.searchsorted(sorted_onsets, times + lead_s * 1e9, side="right")
    matched: dict[int, int] = {}
    free: list[int] = []
    pushed = 0
    for i in np.argsort(times, kind="stable").tolist():
        while pushed < hi[i]:
            free.append(pushed)
            pushed += 1
        if free and free[-1] >= lo[i]:
            matched[i] = int(order[free.pop()])
    return dict(sorted(matched.items()))


def _utterance_table(
    run_id: str, spoken: pd.DataFrame, detection: ActivationResult, matched: dict[int, int], contacts: pd.DataFrame
) -> pd.DataFrame:
    by_row = {row: (i, detection.activations[i]) for i, row in matched.items()}
    attributed = contacts[contacts["attributed"]].sort_values(["utterance", "score"], ascending=[True, False])
    listed = {
        u: (g["endpoint"].tolist(), [round(s, 4) for s in g["score"]]) for u, g in attributed.groupby("utterance")
    }
    table = spoken.assign(run_id=run_id)
    found = [by_row.get(row) for row in range(len(spoken))]
    table["activation_id"] = pd.array([f[0] if f else None for f in found], dtype="Int64")
    table["activation_lag_s"] = [
        (f[1].onset_ns - o) / 1e9 if f else np.nan for f, o in zip(found, spoken["onset_capture_ns"], strict=False)
    ]
    table["activation_bytes_up"] = pd.array([f[1].bytes_up if f else None for f in found], dtype="Int64")
    table["endpoint_ids"] = [listed.get(row, ([], []))[0] for row in range(len(spoken))]
    table["scores"] = [listed.get(row, ([], []))[1] for row in range(len(spoken))]
    return conform("utterances", table)


def activation_table(run_id: str, detection: ActivationResult, utterance_of: dict[int, int]) -> pd.DataFrame:
    """The activations table; ``utterance_of`` maps an activation's index to its try's ``utterance_seq``."""
    if not detection.activations:
        return empty_table("activations")
    return conform(
        "activations",
        pd.DataFrame(
            {
                "run_id": run_id,
                "activation_id": np.arange(len(detection.activations)),
                "onset_capture_ns": [a.onset_ns for a in detection.activations],
                "end_capture_ns": [a.end_ns for a in detection.activations],
                "bytes_up": [a.bytes_up for a in detection.activations],
                "bursts": [a.bursts for a in detection.activations],
                "confidence": [a.confidence for a in detection.activations],
                "endpoint_ids": [list(a.endpoints) for a in detection.activations],
                "utterance_seq": pd.array(
                    [utterance_of.get(i) for i in range(len(detection.activations))], dtype="Int64"
                ),
            }
        ),
    )


def _endpoint_table(run_id: str, view: CaptureView, detection: ActivationResult) -> pd.DataFrame:
    """The device's endpoints, classified; the voice endpoints found by their traffic count as voice."""
    contacted = view.flows.loc[~view.flows["service"], "endpoint"]
    table = view.endpoints[view.endpoints["endpoint_id"].isin(contacted)].assign(run_id=run_id)
    table = table.rename(columns={"first_ns": "first_capture_ns", "last_ns": "last_capture_ns"})
    table.loc[table["endpoint_id"].isin(detection.voice_endpoints), "category"] = "voice"
    return conform("endpoints", table)


def _attribution_table(run_id: str, spoken: pd.DataFrame, skills: pd.DataFrame) -> pd.DataFrame:
    if skills.empty:
        return empty_table("attributions")
    names = spoken.drop_duplicates("skill_id").set_index("skill_id")["skill_name"]
    table = skills.rename(columns={"skill": "skill_id", "endpoint": "endpoint_id"}).assign(run_id=run_id)
    table["skill_name"] = table["skill_id"].map(names)
    return conform("attributions", table)


def _contact_table(
    run_id: str, view: CaptureView, episodes: pd.DataFrame, endpoints: pd.DataFrame, detection: ActivationResult
) -> pd.DataFrame:
    flows = view.flows
    table = episodes.rename(
        columns={"endpoint": "endpoint_id", "onset_ns": "onset_capture_ns", "end_ns": "end_capture_ns"}
    ).assign(run_id=run_id)
    rows = table["flow"].to_numpy(np.int64)
    for col in ("protocol", "remote_ip", "remote_port", "local_port"):
        table[col] = flows[col].to_numpy()[rows] if len(rows) else []
    info = endpoints.set_index("endpoint_id")[["category", "ad_or_tracking"]]
    table["category"] = info["category"].reindex(table["endpoint_id"]).fillna("other").to_numpy()
    table["ad_or_tracking"] = info["ad_or_tracking"].reindex(table["endpoint_id"]).fillna(False).to_numpy(bool)
    return conform("contacts", table)


def has_capture(run: RunDir) -> bool:
    """Whether the run's manifest lists a capture file that arrived (a bench run without
    ``--capture`` lists none)."""
    return any(c.state != "missing" for c in read_manifest(run).captures)


def timings_only(
    run_dir: str | Path, transcribe: bool = True, progress: Progress = no_progress
) -> tuple[Summary, dict[str, pd.DataFrame]]:
    """The analysis of a run without a capture: its utterances and answers (checked as by
    :func:`correlate_run`) from the event log (bench clock taken as the capture clock), every
    traffic table empty, ``captures`` empty."""
    run = RunDir.existing(run_dir)
    warnings = ["no capture: traffic not analysed"]
    said = _spoken(run, transcribe, warnings, progress)
    run_id, spoken = said.run_id, said.table
    try:
        capture_paths(run, None, warnings)
    except InputError:
        pass  # the warnings it gathered (lost files, unlisted files) are what matters here
    if spoken.empty:
        warnings.append("the run logged no spoken utterances")
    utterances = spoken.assign(
        run_id=run_id,
        onset_capture_ns=spoken["onset_ns"],
        activation_id=pd.array([None] * len(spoken), dtype="Int64"),
        activation_lag_s=np.nan,
        activation_bytes_up=pd.array([None] * len(spoken), dtype="Int64"),
        endpoint_ids=[[] for _ in range(len(spoken))],
        scores=[[] for _ in range(len(spoken))],
    )
    tables = {name: empty_table(name) for name in ("activations", "endpoints", "attributions", "contacts")}
    tables["utterances"] = conform("utterances", utterances)
    summary = Summary(
        run_id=run_id,
        device=None,
        captures=[],
        clock=host_alignment(),
        counts=_counts(tables, 0.0),
        activations=DetectionInfo(threshold_bps=0.0, voice_endpoints=[], voice_source="none"),
        answers=said.answers,
        warnings=warnings,
    )
    return summary, tables
