"""How the campaign is doing: per persona what was captured, spoken, answered and verified, the
gaps (no capture, or no answer although the bench spoke) and the failures.

Read from each run directory alone (manifest and event log), so it works while runs go on.
A capture gap is a hole longer than the threshold between the persona's captures (across its
runs); an answer gap is a time between two answers longer than the threshold in which the bench
spoke and no answer came for longer than the threshold after it. ``verified`` counts answers
whose ``answer_checked`` event says ``matched`` (the answer held the utterance's expected
keywords or regex); it is ``None`` ("-") when the run's log holds no answer check.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from pathlib import Path

from pydantic import BaseModel, Field

from harness.campaign.manifest import Campaign, CampaignDir
from harness.errors import HarnessError
from harness.jsonl import read_jsonl
from harness.report.tables import utc as _utc
from harness.rundir.events import (
    AnswerHeard,
    CaptureStarted,
    CaptureStopped,
    DeviceLost,
    ErrorEvent,
    RunFinished,
    UtteranceEnded,
    read_events,
)
from harness.rundir.layout import RunDir
from harness.rundir.manifest import read_manifest

HOUR_NS = 3600 * 10**9


class Gap(BaseModel):
    kind: str = Field(description='"capture": nothing captured; "answers": spoken to, no answer')
    from_ns: int
    to_ns: int
    hours: float


class RunStatus(BaseModel):
    path: str
    run_id: str
    state: str = Field(description="the manifest's status (running, interrupted, failed, finished) or unreadable")
    capture_hours: float
    spoken: int
    answered: int
    verified: int | None
    failures: list[str]


class PersonaStatus(BaseModel):
    persona: str
    control: bool
    device: str | None
    runs: list[RunStatus]
    crawls: int
    ads: int
    capture_hours: float
    spoken: int
    answered: int
    verified: int | None
    gaps: list[Gap]
    failures: list[str]


class CampaignStatus(BaseModel):
    name: str
    control: str | None
    gap_threshold_s: float
    personas: list[PersonaStatus]


class _RunFacts:
    def __init__(self) -> None:
        self.captured: list[tuple[int, int]] = []
        self.onsets: list[int] = []
        self.answers: list[int] = []


def campaign_status(folder: CampaignDir, campaign: Campaign, gap_s: float = 1800.0) -> CampaignStatus:
    personas = []
    for persona in campaign.personas:
        runs, facts = [], []
        for stored in persona.runs:
            status, fact = _run_status(folder.resolve(stored))
            runs.append(status)
            facts.append(fact)
        verified = [r.verified for r in runs if r.verified is not None]
        failures = [f"{r.run_id or r.path}: {f}" for r in runs for f in r.failures]
        failures += [f"{s}: no such crawl directory" for s in persona.crawls if not folder.resolve(s).is_dir()]
        failures += [f"{s}: no such ad file" for s in persona.ads if not folder.resolve(s).is_file()]
        personas.append(
            PersonaStatus(
                persona=persona.id,
                control=persona.id == campaign.control,
                device=persona.bench.device,
                runs=runs,
                crawls=len(persona.crawls),
                ads=len(persona.ads),
                capture_hours=round(sum(r.capture_hours for r in runs), 3),
                spoken=sum(r.spoken for r in runs),
                answered=sum(r.answered for r in runs),
                verified=sum(verified) if verified else None,
                gaps=_gaps(facts, int(gap_s * 1e9)),
                failures=failures,
            )
        )
    return CampaignStatus(name=campaign.name, control=campaign.control, gap_threshold_s=gap_s, personas=personas)


def _run_status(root: Path) -> tuple[RunStatus, _RunFacts]:
    run = RunDir(root)
    facts = _RunFacts()
    failures: list[str] = []
    if not run.events.is_file():
        return RunStatus(
            path=str(root), run_id="", state="unreadable", capture_hours=0.0, spoken=0, answered=0, verified=None,
            failures=["no event log: not a run directory (or it was never started)"],
        ), facts  # fmt: skip
    try:
        events = read_events(run.events).events
    except HarnessError as exc:
        return RunStatus(
            path=str(root), run_id="", state="unreadable", capture_hours=0.0, spoken=0, answered=0, verified=None,
            failures=[str(exc)],
        ), facts  # fmt: skip
    run_id = events[0].run_id if events else ""
    facts.onsets = [e.onset_wall_ns for e in events if isinstance(e, UtteranceEnded)]
    facts.answers = [e.onset_wall_ns for e in events if isinstance(e, AnswerHeard)]
    last_spoken = max((e.end_wall_ns for e in events if isinstance(e, UtteranceEnded)), default=None)
    state = "unreadable"
    try:
        manifest = read_manifest(run)
        state = manifest.status
        captures = manifest.captures
    except HarnessError as exc:
        failures.append(str(exc))
        captures = []
    started = {f: e.t_wall_ns for e in events if isinstance(e, CaptureStarted) for f in e.files}
    stopped_at = [e.t_wall_ns for e in events if isinstance(e, CaptureStopped)]
    for c in captures:
        path = run.resolve(c.path)
        if c.state == "missing" or not path.is_file():
            failures.append(f"capture file {c.path} is missing")
            continue
        begin = c.started_ns or started.get(c.path)
        end = c.stopped_ns or (min(stopped_at) if stopped_at else path.stat().st_mtime_ns)
        if begin is not None and end > begin:
            facts.captured.append((begin, end))
    for e in events:
        if isinstance(e, CaptureStopped) and last_spoken is not None and e.t_wall_ns < last_spoken:
            failures.append(f"capture stopped at {_utc(e.t_wall_ns)} while the run went on")
        elif isinstance(e, DeviceLost):
            failures.append(f"{e.kind} device {e.device} lost at {_utc(e.t_wall_ns)}: {e.message}")
        elif isinstance(e, ErrorEvent) and e.fatal:
            failures.append(f"fatal {e.kind} at {_utc(e.t_wall_ns)}: {e.message}")
    if state not in ("finished", "unreadable"):
        failures.append(f"the run never finished (status {state})")
    elif not any(isinstance(e, RunFinished) for e in events):
        failures.append("the log has no run_finished event: the run never finished")
    return RunStatus(
        path=str(root),
        run_id=run_id,
        state=state,
        capture_hours=round(sum(b - a for a, b in facts.captured) / HOUR_NS, 3),
        spoken=len(facts.onsets),
        answered=len(facts.answers),
        verified=_verified(run),
        failures=failures,
    ), facts


def _verified(run: RunDir) -> int | None:
    """Answers whose check matched, or None when the log holds no answer check (read as raw
    records: logs written before answer checks existed have none)."""
    results = {
        record.get("answer_seq"): record.get("result")
        for record in read_jsonl(run.events)
        if record.get("event") == "answer_checked"
    }
    return sum(result == "matched" for result in results.values()) if results else None


def _gaps(facts: list[_RunFacts], threshold_ns: int) -> list[Gap]:
    gaps = []
    spans = sorted(span for f in facts for span in f.captured)
    covered_to = spans[0][1] if spans else 0
    for begin, end in spans[1:]:
        if begin - covered_to > threshold_ns:
            gaps.append(_gap("capture", covered_to, begin))
        covered_to = max(covered_to, end)
    onsets = sorted(t for f in facts for t in f.onsets)
    if onsets:
        answers = sorted(t for f in facts for t in f.answers)
        marks = [onsets[0], *answers, onsets[-1]]
        for a, b in zip(marks, marks[1:], strict=False):
            # the bench spoke at some t in [a, b - threshold]: no answer for longer than the threshold after it
            if b - a > threshold_ns and bisect_right(onsets, b - threshold_ns) > bisect_left(onsets, a):
                gaps.append(_gap("answers", a, b))
    return sorted(gaps, key=lambda g: g.from_ns)


def _gap(kind: str, a: int, b: int) -> Gap:
    return Gap(kind=kind, from_ns=a, to_ns=b, hours=round((b - a) / HOUR_NS, 3))
