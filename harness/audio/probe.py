"""What the C audio libraries print while PortAudio probes the devices, kept off the terminal.

PortAudio's initialisation walks every ALSA card and JACK server; ALSA and JACK report each
miss on file descriptor 2 (about a hundred lines on a host without a sound card), below
Python's ``sys.stderr``. :func:`quiet_probe` routes descriptor 2 to a temporary file around such
a call and keeps the text; with :func:`show_probe` on (the CLI's ``--verbose``) the text is
written to the terminal as it was captured.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_show = False
_captured: list[str] = []


def show_probe(on: bool) -> None:
    """Whether captured probe messages are also written to standard error (``--verbose``)."""
    global _show
    _show = on


def probe_messages() -> str:
    """Everything the audio libraries printed during the probes of this process so far."""
    return "".join(_captured)


@contextmanager
def quiet_probe() -> Iterator[None]:
    """Route file descriptor 2 to a temporary file while the block runs, then restore it.

    Messages Python itself writes in the block (``sys.stderr``) are captured too, which is why
    the block should hold only the library call. One block at a time: descriptor 2 is the
    process's.
    """
    with _lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
            _captured.append(text)
            if _show and text:
                sys.stderr.write(text)
                sys.stderr.flush()
