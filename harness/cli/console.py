"""The terminal: one rich console for results (stdout) and one for messages (stderr)."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    err.print(f"[yellow]warning:[/yellow] {message}", markup=True, soft_wrap=True)


def error_line(message: str) -> None:
    """Print an error as exactly one line on stderr (no markup interpretation of the text)."""
    err.print(f"harness: error: {message}", markup=False, soft_wrap=True)
