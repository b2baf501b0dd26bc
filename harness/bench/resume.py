"""Where a logged run stands: which plan items are done, what was cut off, what comes next.

A plan item is done when its ``item_completed`` is logged (after its last answer or final
no-answer, stop phrase and follow-ups). An item that was under way when the process died is
spoken again from its first turn, since a follow-up only makes sense right after its parent.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.rundir.events import (
    AnswerHeard,
    Event,
    ItemCompleted,
    NoAnswer,
    RunFinished,
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


def run_state(events: list[Event], plan_items: int) -> RunState:
    """Summarise a run's events; ``next_index == plan_items`` when every item is done."""
    completed = frozenset(e.plan_index for e in events if isinstance(e, ItemCompleted))
    closed = {e.started_seq for e in events if isinstance(e, UtteranceEnded | UtteranceCut)}
    open_utterances = tuple(e for e in events if isinstance(e, UtteranceStarted) and e.seq not in closed)
    answers = [e for e in events if isinstance(e, AnswerHeard)]
    return RunState(
        completed=completed,
        next_index=next((i for i in range(plan_items) if i not in completed), plan_items),
        open_utterances=open_utterances,
        last_answer=answers[-1] if answers else None,
        answers=len(answers),
        no_answers=sum(1 for e in events if isinstance(e, NoAnswer) and e.final),
        finished=any(isinstance(e, RunFinished) for e in events),
    )
