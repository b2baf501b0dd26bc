"""How long a run takes: one estimate for ``harness plan``, ``harness run --dry-run`` and the live view.

Per plan item: its spoken turns (the utterance and its follow-ups), the wait for each answer to
start (``answer_timeout_s`` in full, when the bench listens), and the gap before the next item.
The worst case adds, for every turn, an answer that runs ``max_answer_s`` and the stop phrase.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.script.models import Persona
from harness.script.plan import PlanItem


@dataclass(frozen=True)
class Duration:
    """Seconds of a stretch of a run, by part."""

    turns: int = 0
    speech_s: float = 0.0
    gaps_s: float = 0.0
    waits_s: float = 0.0
    worst_extra_s: float = 0.0

    @property
    def estimate_s(self) -> float:
        """Speech, gaps and answer waits."""
        return self.speech_s + self.gaps_s + self.waits_s

    @property
    def worst_s(self) -> float:
        """The estimate with every answer at its longest and stopped."""
        return self.estimate_s + self.worst_extra_s

    def __add__(self, other: Duration) -> Duration:
        return Duration(
            self.turns + other.turns,
            self.speech_s + other.speech_s,
            self.gaps_s + other.gaps_s,
            self.waits_s + other.waits_s,
            self.worst_extra_s + other.worst_extra_s,
        )


SpokenSeconds = Callable[[Persona, str], float]
"""Seconds a persona takes to say a text."""


def item_duration(item: PlanItem, persona: Persona, spoken_s: SpokenSeconds, listening: bool, last: bool) -> Duration:
    """One plan item; ``last`` items have no gap."""
    session = persona.session
    texts = [item.text, *item.follow_ups]
    waits = len(texts) * session.answer_timeout_s if listening else 0.0
    worst = len(texts) * (session.max_answer_s + spoken_s(persona, session.stop_phrase)) if listening else 0.0
    speech = sum(spoken_s(persona, t) for t in texts)
    return Duration(len(texts), speech, 0.0 if last else session.gap_s, waits, worst)


def run_duration(
    items: Sequence[PlanItem],
    persona_of: Callable[[PlanItem], Persona],
    spoken_s: SpokenSeconds,
    listening: bool = True,
) -> Duration:
    """The sum of :func:`item_duration` over ``items`` (the last one has no gap)."""
    total = Duration()
    for n, item in enumerate(items):
        total += item_duration(item, persona_of(item), spoken_s, listening, last=n == len(items) - 1)
    return total


def clock_text(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
