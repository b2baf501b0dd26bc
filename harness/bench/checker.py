"""The run's answer checker: transcribes each answer in a separate process and checks it, so the
next utterance is neither held up nor disturbed by the recogniser.

pocketsphinx holds Python's global lock for the whole of a decode (a few seconds per answer, tens
of seconds for a long one), which froze the run's playback callbacks when it ran in a thread: the
decoder lives in a worker process (started with ``spawn``, so it inherits no audio stream), and a
thread of the run only waits for its transcripts, checks them against the expect and logs each
result as its own fsynced ``answer_checked`` event keyed by the turn (and the seq of the answer),
whenever it is ready: it may follow later events of the run. Answers still queued when the
process is killed stay unchecked in the log; the next resume queues them again, and
``harness correlate`` checks whatever is left.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.bench.checks import checked_event, expect_of, vocabulary
from harness.bench.plan import Plan
from harness.rundir.events import AnswerChecked, AnswerHeard

STOP_WAIT_S = 5.0  # how long a dropped worker gets to go before it is killed


def _serve(words: list[str], jobs: Any, results: Any) -> None:
    """The worker process: transcribe each (key, samples, rate) job until a None arrives."""
    from harness.bench.transcribe import Transcriber

    try:
        transcriber = Transcriber(words)
    except Exception as exc:  # a broken recogniser install: every answer comes back unchecked
        results.put(("error", f"the recogniser does not load: {exc}"))
        transcriber = None
    while (job := jobs.get()) is not None:
        key, samples, rate = job
        if transcriber is None:
            continue
        began = time.monotonic()
        try:
            results.put(("done", (key, transcriber.transcribe(samples, rate), time.monotonic() - began)))
        except Exception as exc:  # one answer the decoder cannot take; the rest go on
            results.put(("error", f"answer seq {key}: {exc}"))
    results.put(None)


class AnswerChecker:
    """The worker process and the run's thread that logs its results; ``emit`` logs a result
    (thread-safe), ``on_checked`` shows it."""

    def __init__(
        self,
        plan: Plan,
        emit: Callable[[AnswerChecked], AnswerChecked],
        on_checked: Callable[[AnswerChecked], None],
    ) -> None:
        self._plan = plan
        self._emit = emit
        self._on_checked = on_checked
        self._pending: dict[int, AnswerHeard] = {}
        self._lock = threading.Lock()
        self.error: str | None = None  # the first failure; those answers stay unchecked
        context = multiprocessing.get_context("spawn")
        self._jobs = context.Queue()
        self._results = context.Queue()
        self._worker = context.Process(
            target=_serve, args=(sorted(vocabulary(plan)), self._jobs, self._results), daemon=True
        )
        self._worker.start()
        self._receiver = threading.Thread(target=self._receive, daemon=True, name="answer-checks")
        self._receiver.start()

    def submit(self, heard: AnswerHeard, samples: np.ndarray, rate: int) -> None:
        """Queue one logged answer (``samples``: the answer part of its recording)."""
        with self._lock:
            self._pending[heard.seq] = heard
        self._jobs.put((heard.seq, np.ascontiguousarray(samples, dtype=np.float32), rate))

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self, wait: bool = True) -> None:
        """Finish the queued checks (``wait``), or drop them (they stay unchecked in the log)."""
        if wait:
            self._jobs.put(None)
            self._worker.join()
        else:
            self._worker.terminate()
            self._worker.join(STOP_WAIT_S)
        self._results.put(None)  # ends the receiver after the worker's last results (also if it died)
        self._receiver.join(None if wait else STOP_WAIT_S)
        self._jobs.close()
        self._results.close()

    def _receive(self) -> None:
        while (message := self._results.get()) is not None:
            kind, body = message
            if kind == "error":
                self.error = self.error or body
                continue
            key, transcript, decode_s = body
            with self._lock:
                heard = self._pending.pop(key, None)
            if heard is None:
                continue
            expect = expect_of(self._plan, heard.plan_index, heard.turn)
            try:
                checked = self._emit(checked_event(heard, transcript, expect, decode_s))
            except Exception as exc:  # the log cannot be written (disk full): the run itself reports that
                self.error = self.error or str(exc)
                continue
            self._on_checked(checked)
