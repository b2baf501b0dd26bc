"""Pydantic's validation errors as messages a script author understands, at their place."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from harness.errors import Place
from harness.yamlsource import Loc, Source, is_date

_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "model_type": "a mapping (key: value lines)",
    "dict_type": "a mapping (key: value lines)",
}


def describe(value: Any) -> str:
    """A value as the author wrote it, in words."""
    if value is None:
        return "nothing (empty value)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if is_date(value):
        return f"the date {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class validating the mapping at ``loc`` (None when it is not a model)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            if typing.get_origin(current) is not list or not args:
                return None
            current = args[0]
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``Annotated[X, ...]`` -> ``X``."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _name(loc: Loc) -> str:
    """Dotted name of a path for messages: ``skills[0].utterances[2].text``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "the script"


def _unknown_key(model: type[BaseModel], loc: Loc) -> str:
    key = str(loc[-1])
    parent = _model_at(model, loc[:-1])
    allowed = list(parent.model_fields) if parent else []
    message = f"unknown key '{key}'"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean '{close[0]}'?"
    if allowed:
        return f"{message} (allowed here: {', '.join(allowed)})"
    return message


def _quote_hint(error: ErrorDetails) -> str:
    value = error.get("input")
    if error["type"] == "string_type" and (isinstance(value, (bool, int, float)) or is_date(value)):
        return " (YAML reads it so; put it in quotes to make it text)"
    return ""


def problem(model: type[BaseModel], source: Source, error: ErrorDetails) -> tuple[Place, str]:
    """Place and message for one pydantic error on ``source.data``."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return source.place(loc, key=True), _unknown_key(model, loc)
    if kind == "missing":
        where = _name(loc[:-1])
        return source.place(loc[:-1]), f"missing key '{loc[-1]}' in {where}"
    name = _name(loc)
    got = describe(error.get("input"))
    if kind in _EXPECTED:
        message = f"{name}: expected {_EXPECTED[kind]}, got {got}{_quote_hint(error)}"
    elif kind == "string_pattern_mismatch":
        message = (
            f"{name}: {got} is not an id: use lowercase letters, digits, '-' and '_', starting with a letter or digit"
        )
    elif kind == "value_error":
        message = f"{name}: {error['msg'].removeprefix('Value error, ')}"
    elif kind == "too_short" and isinstance(error.get("input"), list):
        message = f"{name}: needs at least {error.get('ctx', {}).get('min_length', 1)} item(s)"
    elif kind == "string_too_short":
        message = f"{name}: must not be empty"
    else:
        text = error["msg"]
        text = text[:1].lower() + text[1:]
        text = text.replace("input should be", "should be")
        message = f"{name}: {text}, got {got}"
    return source.place(loc), message
