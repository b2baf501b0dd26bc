"""How a long stage says how far it got, without knowing who shows it (the CLI draws bars)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``progress(step, done, total)``: the stage is at ``done`` of ``total`` in ``step`` (a few
    words, e.g. "reading captures"; ``total`` None when unknown). A new ``step`` ends the previous."""

    def __call__(self, step: str, done: float = 0, total: float | None = None) -> None: ...


def no_progress(step: str, done: float = 0, total: float | None = None) -> None:
    """The :class:`Progress` of a caller that shows nothing."""
