"""Answer checks: did the answer hold what its utterance's ``expect`` names, i.e. did the
intended skill answer?

A check transcribes the answer offline (:mod:`harness.bench.transcribe`) and looks for the
expect in the transcript:

- a **keyword** (one or more words) is found when its words appear in a row in the transcript,
  compared case-folded and without punctuation, each heard word close enough to the keyword's
  word: a rapidfuzz ratio of at least :data:`WORD_SCORE` (so "step" finds "steps" and a
  recogniser's "fitbits" finds "fitbit"); words of :data:`EXACT_UP_TO` letters or fewer must be
  heard exactly, since one wrong letter turns them into other words;
- the **regex** is searched (``re.search``, case-insensitive) in the transcript as the
  recogniser gives it: lower-case words separated by single spaces, no punctuation;
- the answer is ``matched`` when any keyword or the regex is found, ``not_matched`` when none is,
  ``unchecked`` when the utterance has no expect (follow-ups and stop phrases never have one).

The run logs each check as an ``answer_checked`` event; :func:`try_results` reads a log into
one result per spoken try (``no_answer`` for a try that heard nothing), and :func:`answer_counts`
counts how many utterances reached the intended skill.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz

from harness.bench.plan import Plan
from harness.bench.transcribe import Transcriber, recogniser_name
from harness.errors import HarnessError
from harness.progress import Progress, no_progress
from harness.rundir.analysis import AnswerCounts
from harness.rundir.events import (
    AnswerChecked,
    AnswerHeard,
    Event,
    NoAnswer,
    TrySuperseded,
    TurnSkipped,
    UtteranceEnded,
    UtteranceStarted,
)
from harness.rundir.layout import RunDir
from harness.script import Expect
from harness.script.wake import words
from harness.wav import read_wav

WORD_SCORE = 80.0  # rapidfuzz ratio (0-100) from which a heard word counts as the keyword's word
EXACT_UP_TO = 3  # words this short must be heard exactly


@dataclass(frozen=True)
class Verdict:
    result: str  # matched, not_matched, unchecked
    matched_by: str  # "keyword:WORDS", "regex:PATTERN" or ""


def _same_word(expected: str, heard: str) -> bool:
    if len(expected) <= EXACT_UP_TO:
        return expected == heard
    return fuzz.ratio(expected, heard) >= WORD_SCORE


def keyword_found(keyword: str, heard: list[str]) -> bool:
    """Whether the words of ``keyword`` appear in a row in ``heard`` (see the module's rules)."""
    wanted = words(keyword)
    if not wanted:
        return False
    return any(
        all(_same_word(w, h) for w, h in zip(wanted, heard[start : start + len(wanted)], strict=True))
        for start in range(len(heard) - len(wanted) + 1)
    )


def check_transcript(transcript: str, expect: Expect | None) -> Verdict:
    """The verdict of one transcript against an utterance's expect."""
    if expect is None or (not expect.keywords and expect.regex is None):
        return Verdict("unchecked", "")
    heard = words(transcript)
    for keyword in expect.keywords:
        if keyword_found(keyword, heard):
            return Verdict("matched", f"keyword:{keyword}")
    if expect.regex is not None and re.search(expect.regex, " ".join(heard), re.IGNORECASE):
        return Verdict("matched", f"regex:{expect.regex}")
    return Verdict("not_matched", "")


def vocabulary(plan: Plan) -> set[str]:
    """Every word of the plan's expect keywords, to make the recogniser able to hear them."""
    return {w for item in plan.items if item.expect for k in item.expect.keywords for w in words(k)}


def expect_of(plan: Plan | None, plan_index: int, turn: int) -> Expect | None:
    """The expect a turn is checked against: its plan item's, for the opening turn only."""
    if plan is None or turn != 0 or plan_index >= len(plan.items):
        return None
    return plan.items[plan_index].expect


def check_answer(
    transcriber: Transcriber, heard: AnswerHeard, samples: np.ndarray, rate: int, expect: Expect | None
) -> AnswerChecked:
    """Transcribe one answer (its samples, the answer part of the recording) and check it."""
    began = time.monotonic()
    return checked_event(heard, transcriber.transcribe(samples, rate), expect, time.monotonic() - began)


def checked_event(heard: AnswerHeard, transcript: str, expect: Expect | None, decode_s: float) -> AnswerChecked:
    """The ``answer_checked`` event of one answer's transcript."""
    verdict = check_transcript(transcript, expect)
    return AnswerChecked(
        **heard.ref().fields(),
        started_seq=heard.started_seq,
        answer_seq=heard.seq,
        result=verdict.result,  # type: ignore[arg-type]
        transcript=transcript,
        matched_by=verdict.matched_by,
        keywords=list(expect.keywords) if expect else [],
        regex=expect.regex if expect else None,
        recogniser=recogniser_name(),
        decode_s=round(decode_s, 3),
    )


def unchecked_answers(events: list[Event]) -> list[AnswerHeard]:
    """The answers of a log that have no ``answer_checked`` yet (a run without checks, or one
    that crashed before its checker got to them)."""
    done = {e.answer_seq for e in events if isinstance(e, AnswerChecked)}
    return [e for e in events if isinstance(e, AnswerHeard) and e.seq not in done]


def check_logged(
    run: RunDir, answers: list[AnswerHeard], plan: Plan, transcriber: Transcriber, progress: Progress = no_progress
) -> list[AnswerChecked]:
    """Check logged answers offline from their WAVs (an unreadable WAV is left unchecked); an
    answer of an older log that carries its transcript is checked on that one."""
    checked = []
    for done, heard in enumerate(answers):
        progress("checking answers", done, len(answers))
        expect = expect_of(plan, heard.plan_index, heard.turn)
        if heard.transcript is not None:
            checked.append(checked_event(heard, heard.transcript, expect, 0.0))
            continue
        try:
            samples, rate = read_wav(run.resolve(heard.path))
        except (OSError, HarnessError):
            continue
        voice = samples[heard.onset_index : heard.end_index + 1]
        checked.append(check_answer(transcriber, heard, voice, rate, expect))
    return checked


@dataclass(frozen=True)
class TryResult:
    """One spoken try (an ``utterance_ended``) and what came of it."""

    started_seq: int
    plan_index: int
    turn: int
    attempt: int
    skill_id: str
    superseded: bool
    final: bool  # the try that counts for its turn: the last one not superseded
    result: str  # matched, not_matched, no_answer, unchecked
    transcript: str
    matched_by: str
    has_expect: bool


def try_results(events: list[Event], plan: Plan | None, extra: Iterable[AnswerChecked] = ()) -> dict[int, TryResult]:
    """Every spoken try of a log by its ``utterance_started`` seq, with its check (from the log,
    or ``extra`` checks made offline); an answer not checked is ``unchecked``."""
    started = {e.seq: e for e in events if isinstance(e, UtteranceStarted)}
    checks = {e.started_seq: e for e in [*events, *extra] if isinstance(e, AnswerChecked)}
    answered = {e.started_seq for e in events if isinstance(e, AnswerHeard)}
    unanswered = {e.started_seq for e in events if isinstance(e, NoAnswer)}
    superseded = {e.started_seq for e in events if isinstance(e, TrySuperseded)}
    ended = [e for e in events if isinstance(e, UtteranceEnded) and e.started_seq in started]
    last: dict[tuple[int, int], int] = {}
    for e in ended:
        if e.started_seq not in superseded:
            last[(e.plan_index, e.turn)] = e.started_seq
    results = {}
    for e in ended:
        seq = e.started_seq
        check = checks.get(seq)
        if check is not None:
            result = check.result
        elif seq in unanswered and seq not in answered:
            result = "no_answer"
        else:
            result = "unchecked"
        results[seq] = TryResult(
            started_seq=seq,
            plan_index=e.plan_index,
            turn=e.turn,
            attempt=e.attempt,
            skill_id=e.skill_id,
            superseded=seq in superseded,
            final=last.get((e.plan_index, e.turn)) == seq,
            result=result,
            transcript=check.transcript if check else "",
            matched_by=check.matched_by if check else "",
            has_expect=expect_of(plan, e.plan_index, e.turn) is not None,
        )
    return results


def answer_counts(results: Iterable[TryResult], events: list[Event]) -> AnswerCounts:
    """How many utterances (plan items, their opening turn's final try) reached the intended skill."""
    results = list(results)
    final = [r for r in results if r.final and r.turn == 0]
    expected = [r for r in final if r.has_expect]
    matched = sum(r.result == "matched" for r in expected)
    decided = [r for r in expected if r.result in ("matched", "not_matched", "no_answer")]
    return AnswerCounts(
        utterances=len(final),
        with_expect=len(expected),
        matched=matched,
        not_matched=sum(r.result == "not_matched" for r in expected),
        no_answer=sum(r.result == "no_answer" for r in expected),
        unchecked=len(final) - len(decided),
        reached_skill_rate=round(matched / len(decided), 4) if decided else None,
        superseded_tries=sum(r.superseded for r in results),
        skipped_turns=sum(isinstance(e, TurnSkipped) for e in events),
    )


def counts_line(counts: AnswerCounts) -> str:
    """One line for the terminal: how many utterances reached the intended skill."""
    if not counts.with_expect:
        return f"answer checks: none of the {counts.utterances} utterances has an expect"
    rate = "" if counts.reached_skill_rate is None else f" ({counts.reached_skill_rate:.0%} of those checked)"
    return (
        f"reached the intended skill: {counts.matched} of {counts.with_expect} utterances with an expect{rate}; "
        f"not matched {counts.not_matched}, no answer {counts.no_answer}, "
        f"unchecked {counts.unchecked} (of {counts.utterances} utterances)"
    )
