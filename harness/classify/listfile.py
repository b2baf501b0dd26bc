"""Load a YAML list file into a pydantic model, reporting errors at their line and column.

Reading and positions come from the persona-script reader (safe composition, size and alias
limits, duplicate keys); this module only validates against a list's model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import InputError, Place
from harness.script.problems import problem
from harness.yamlsource import read_source

M = TypeVar("M", bound=BaseModel)


def load_list_file(path: str | Path, model: type[M]) -> M:
    """Parse ``path`` (safe YAML) and validate it as ``model``.

    Raises :class:`InputError` naming the file and the line/column of the first problem (YAML
    syntax, a duplicate key, or a value the model rejects), with a count of any others.
    """
    path = Path(path)
    source = read_source(path)
    if source.data is None and [e.message.startswith("empty") for e in source.errors] == [True]:
        # the script reader's message names a persona's keys; a list has its own
        raise InputError(path, "the list is empty: expected a mapping with `endpoints`", Place(line=1, column=1))
    if source.errors:
        raise _first(source.errors)
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        errors = [
            InputError(path, message, place)
            for place, message in (problem(model, source, e) for e in exc.errors(include_url=False))
        ]
        raise _first(errors) from None


def _first(errors: list[InputError]) -> InputError:
    errors = sorted(errors, key=lambda e: (e.place.line or 0, e.place.column or 0))
    if len(errors) == 1:
        return errors[0]
    first = errors[0]
    return InputError(first.path, f"{first.message} (and {len(errors) - 1} more problems)", first.place)
