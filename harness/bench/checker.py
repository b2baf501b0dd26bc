"""The run's answer checker: transcribes and checks each answer in a background thread, so the
next utterance is not held up by the recogniser (a few seconds per answer on a small machine).

Each result is logged as its own fsynced ``answer_checked`` event keyed by the turn (and the
seq of the answer), whenever it is ready: it may follow later events of the run. Answers still
queued when the process is killed stay unchecked in the log; the next resume queues them again,
and ``harness correlate`` checks whatever is left.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

from harness.bench.checks import check_answer, expect_of, vocabulary
from harness.bench.plan import Plan
from harness.rundir.events import AnswerChecked, AnswerHeard


class AnswerChecker:
    """A worker thread with its own recogniser; ``emit`` logs a result (thread-safe), ``on_checked``
    shows it."""

    def __init__(
        self,
        plan: Plan,
        emit: Callable[[AnswerChecked], AnswerChecked],
        on_checked: Callable[[AnswerChecked], None],
    ) -> None:
        self._plan = plan
        self._emit = emit
        self._on_checked = on_checked
        self._jobs: queue.Queue[tuple[AnswerHeard, np.ndarray, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True, name="answer-checker")
        self.error: BaseException | None = None  # the first failure; later answers stay unchecked
        self._thread.start()

    def submit(self, heard: AnswerHeard, samples: np.ndarray, rate: int) -> None:
        """Queue one logged answer (``samples``: the answer part of its recording)."""
        self._jobs.put((heard, samples, rate))

    def pending(self) -> int:
        return self._jobs.qsize()

    def close(self, wait: bool = True) -> None:
        """Finish the queued checks (``wait``), or drop them (they stay unchecked in the log)."""
        if not wait:
            with self._jobs.mutex:
                self._jobs.queue.clear()
        self._jobs.put(None)
        if wait:
            self._thread.join()

    def _work(self) -> None:
        from harness.bench.transcribe import Transcriber  # the recogniser loads in this thread, not the run's

        try:
            transcriber = Transcriber(vocabulary(self._plan))
        except Exception as exc:  # a broken recogniser install: the run goes on unchecked
            self.error = exc
            transcriber = None
        while (job := self._jobs.get()) is not None:
            if transcriber is None or self.error is not None:
                continue
            heard, samples, rate = job
            try:
                checked = self._emit(
                    check_answer(transcriber, heard, samples, rate, expect_of(self._plan, heard.plan_index, heard.turn))
                )
            except Exception as exc:  # the log cannot be written (disk full): the run itself reports that
                self.error = exc
                continue
            self._on_checked(checked)
