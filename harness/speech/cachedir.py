"""Where synthesised speech is cached (a light module: the command line's help shows it)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE/speech``, else ``~/.cache/harness/speech`` (kept 0700, its files 0600: a voice)."""
    root = Path(os.environ["HARNESS_CACHE"]) if os.environ.get("HARNESS_CACHE") else Path.home() / ".cache" / "harness"
    return root.joinpath("speech")
