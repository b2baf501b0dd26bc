"""One JSON document of the run directory (the manifest, the summary), read into its model."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import InputError, first_problem

M = TypeVar("M", bound=BaseModel)


def read_document(path: Path, model: type[M], what: str) -> M:
    """``path`` validated as ``model``; a damaged one is one line naming the file and the field."""
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise InputError(path, exc.strerror or f"cannot read the {what}") from None
    except ValidationError as exc:
        raise InputError(path, f"not a valid {what}: {first_problem(exc)}") from None
