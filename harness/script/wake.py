"""The wake word: whether a text starts with it, and the text as spoken."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words(text: str) -> list[str]:
    """The words of ``text``, case-folded, without punctuation."""
    return [w.casefold() for w in _WORD.findall(text)]


def starts_with_wake_word(text: str, wake_word: str) -> bool:
    """Whether ``text`` begins with ``wake_word``, ignoring case and punctuation ("alexa... open")."""
    wake = words(wake_word)
    return bool(wake) and words(text)[: len(wake)] == wake


def spoken_text(text: str, wake_word: str) -> str:
    """``text`` as spoken: ``"<wake word>, <text>"`` unless it already starts with the wake word."""
    text = text.strip()
    return text if starts_with_wake_word(text, wake_word) else f"{wake_word}, {text}"
