"""Where a logged run stands: which plan items are done, what was cut off, what comes next.

A plan item is done when its ``item_completed`` is logged (after its last answer or final
no-answer, stop phrase and follow-ups). An item that was under way when the process stopped is
spoken again from its first turn, since a follow-up only makes sense right after its parent:
its earlier tries are superseded (a ``try_superseded`` each) and its new tries continue their
turn's attempt numbers, so (plan_index, turn, attempt) stays one try's key.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.rundir.events import (
    AnswerHeard,
    Event,
    ItemCompleted,
    NoAnswer,
    RunFinished,
    TrySuperseded,
    UtteranceCut,
    UtteranceEnded,
    UtteranceStarted,
)


@dataclass(frozen=True)
class RunState:
    completed: frozenset[int]
    next_index: int
    open_utterances: tuple[UtteranceStarted, ...]
    last_answer: AnswerHeard | None
    answers: int
    no_answers: int
    finished: bool
    superseded: tuple[UtteranceStarted, ...] = ()
    """Tries of items under way that a resume replaces (not marked superseded yet)."""
    next_attempt: dict[tuple[int, int], int] | None = None
    """(plan_index, turn) -> the attempt number a new try of that turn gets (absent: 1)."""


def run_state(events: list[Event], plan_items: int) -> RunState:
    """Summarise a run's events; ``next_index == plan_items`` when every item is done."""
    completed = frozenset(e.plan_index for e in events if isinstance(e, ItemCompleted))
    closed = {e.started_seq for e in events if isinstance(e, UtteranceEnded | UtteranceCut)}
    open_utterances = tuple(e for e in events if isinstance(e, UtteranceStarted) and e.seq not in closed)
    answers = [e for e in events if isinstance(e, AnswerHeard)]
    started = [e for e in events if isinstance(e, UtteranceStarted)]
    marked = {e.started_seq for e in events if isinstance(e, TrySuperseded)}
    next_attempt: dict[tuple[int, int], int] = {}
    for e in started:
        key = (e.plan_index, e.turn)
        next_attempt[key] = max(next_attempt.get(key, 1), e.attempt + 1)
    return RunState(
        completed=completed,
        next_index=next((i for i in range(plan_items) if i not in completed), plan_items),
        open_utterances=open_utterances,
        last_answer=answers[-1] if answers else None,
        answers=len(answers),
        no_answers=sum(1 for e in events if isinstance(e, NoAnswer) and e.final),
        finished=any(isinstance(e, RunFinished) for e in events),
        superseded=tuple(e for e in started if e.plan_index not in completed and e.seq not in marked),
        next_attempt=next_attempt,
    )
