"""A long-lived connection of the twin (the voice connection, opened at boot), driven by one
thread: other threads ask for uploads, answers and keep-alives; that thread alone touches the TLS
state, sends the upload's records on time and counts what comes down, and reports each upload,
answer and keep-alive as a truth segment when it ends.

An upload has the shape of an Echo's: an opening burst (the buffered wake word and first audio,
:attr:`Voice.opening_bytes` in records of about 6 KB over :attr:`Voice.opening_s`) and, from
the start, small records of live audio at speech rate (:attr:`Voice.stream_bytes_per_s`, one every
:attr:`Voice.record_s`) until the request has been heard; its last record asks for the answer,
which comes down on the same connection.
"""

from __future__ import annotations

import math
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.rundir import truth
from harness.rundir.truth import Cause
from harness.twin.client import TlsSession
from harness.twin.config import Voice

POLL_S = 0.01  # how long the thread waits for data before it looks at its schedule again
OPENING_RECORD_BYTES = 6000  # the opening burst goes out in records of about this size
CLOSE_TIMEOUT_S = 5.0


@dataclass
class _Segment:
    """What one upload, answer or keep-alive put on the wire so far."""

    cause: Cause
    part: str
    first_ns: int = 0
    last_ns: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    opening_bytes: int = 0
    records_up: int = 0
    cut: bool = False

    def sent(self, wire_bytes: int, at_ns: int) -> None:
        self._touch(at_ns)
        self.bytes_up += wire_bytes
        self.records_up += 1

    def received(self, wire_bytes: int, at_ns: int) -> None:
        self._touch(at_ns)
        self.bytes_down += wire_bytes

    def _touch(self, at_ns: int) -> None:
        self.first_ns = self.first_ns or at_ns
        self.last_ns = at_ns


@dataclass
class Answer:
    """An answer asked for at the end of an upload; :meth:`Link.cancel` cuts it."""

    segment: _Segment
    job: int = 0


@dataclass
class Upload:
    """A request's upload in progress: opening records due at monotonic times, stream records every ``record_s``."""

    segment: _Segment
    opening: list[tuple[float, int]]
    next_due: float
    answer: Answer | None = None
    finish: tuple[int, int, int] | None = None  # (down, burst, rate) of the answer asked for by the last record
    done: threading.Event = field(default_factory=threading.Event)


class Link:
    """One long-lived TLS connection and the thread that drives it. Call :meth:`close` at the end."""

    def __init__(
        self, session: TlsSession, voice: Voice, on_segment: Callable[[truth.Segment], None], rng: random.Random
    ) -> None:
        self.session, self.voice, self.on_segment, self.rng = session, voice, on_segment, rng
        self.connection = session.flow.connection()
        self._ops: queue.Queue[Callable[[], None]] = queue.Queue()
        self._uploads: list[Upload] = []
        self._jobs: dict[int, _Segment] = {}
        self._closing = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"twin-link-{session.flow.endpoint}")
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self.session.closed

    # ----- asked from other threads ------------------------------------------------------------

    def upload(self, cause: Cause) -> Upload:
        """Start a request's upload now: the opening burst, then the speech stream until :meth:`finish`."""
        now = time.monotonic()
        total = self.rng.randint(*self.voice.opening_bytes)
        spread = self.rng.uniform(*self.voice.opening_s)
        count = max(2, math.ceil(total / OPENING_RECORD_BYTES))
        sizes = [total // count + (1 if k < total % count else 0) for k in range(count)]
        opening = [(now + spread * k / (count - 1), size) for k, size in enumerate(sizes)]
        # live audio streams from the start, between the opening's records of buffered audio
        upload = Upload(_Segment(cause, "upload"), opening, now + self._interval())
        self._ops.put(lambda: self._uploads.append(upload))
        return upload

    def finish(self, upload: Upload, down: int, burst: int, rate: int) -> Answer | None:
        """End the upload (the request was heard); its last record asks for ``down`` bytes of answer,
        the first ``burst`` at once and the rest at ``rate`` bytes/s. Returns the answer to come
        (None when ``down`` is 0 or the connection is gone)."""
        answer = Answer(_Segment(upload.segment.cause, "answer")) if down else None

        def ask() -> None:
            upload.answer, upload.finish = answer, (down, burst, rate)

        self._ops.put(ask)
        upload.done.wait(CLOSE_TIMEOUT_S)
        return answer if answer is not None and answer.job else None

    def cancel(self, answer: Answer) -> None:
        """Stop the answer coming down (it was cut); no-op when all of it came."""
        self._ops.put(lambda: self._cancel(answer))

    def keepalive(self, cause: Cause, up: int, down: int) -> None:
        """One keep-alive exchange: ``up`` bytes sent, ``down`` bytes back."""
        self._ops.put(lambda: self._keepalive(cause, up, down))

    def close(self) -> None:
        """End every upload and answer in progress (reported as they stand), hang up, report the flow."""
        self._ops.put(lambda: setattr(self, "_closing", True))
        self._thread.join(CLOSE_TIMEOUT_S)

    # ----- the link's thread -------------------------------------------------------------------

    def _interval(self) -> float:
        return self.rng.uniform(*self.voice.record_s)

    def _run(self) -> None:
        while not self._closing and not self.session.closed:
            while not self._ops.empty():
                self._ops.get_nowait()()
            for upload in list(self._uploads):
                self._pump(upload, time.monotonic())
            for frame in self.session.receive(POLL_S):
                segment = self._jobs.get(frame.job)
                if segment is None:
                    continue
                segment.received(frame.wire_bytes, self.session.received_ns)
                if frame.end:
                    self._report(self._jobs.pop(frame.job))
        while not self._ops.empty():  # what was asked before the close still counts
            self._ops.get_nowait()()
        for upload in self._uploads:
            upload.finish = upload.finish or (0, 0, 0)
            self._pump(upload, time.monotonic())
        for segment in self._jobs.values():
            segment.cut = segment.part == "answer"
            self._report(segment)
        self._jobs.clear()
        self.session.close()

    def _pump(self, upload: Upload, now: float) -> None:
        """Send the upload's records that are due; the last one when it was asked to finish."""
        segment = upload.segment
        if upload.finish is not None:
            down, burst, rate = upload.finish
            size = int(self.voice.stream_bytes_per_s * self._interval())
            job, wire = self.session.send(size, down, burst, rate)
            segment.sent(wire, self.session.sent_ns)
            if upload.answer is not None and job:
                upload.answer.job = job
                self._jobs[job] = upload.answer.segment
            self._uploads.remove(upload)
            self._report(segment)
            upload.done.set()
            return
        while upload.opening and upload.opening[0][0] <= now:
            _, size = upload.opening.pop(0)
            _, wire = self.session.send(size)
            segment.sent(wire, self.session.sent_ns)
            segment.opening_bytes += wire
        if upload.next_due <= now:
            interval = self._interval()
            size = int(self.voice.stream_bytes_per_s * interval * self.rng.uniform(0.9, 1.1))
            segment.sent(self.session.send(size)[1], self.session.sent_ns)
            upload.next_due = max(upload.next_due + interval, now)

    def _cancel(self, answer: Answer) -> None:
        if answer.job in self._jobs:
            answer.segment.bytes_up += self.session.cancel(answer.job)
            answer.segment.cut = True

    def _keepalive(self, cause: Cause, up: int, down: int) -> None:
        segment = _Segment(cause, "keepalive")
        job, wire = self.session.send(up, down)
        segment.sent(wire, self.session.sent_ns)
        if job:
            self._jobs[job] = segment
        else:
            self._report(segment)

    def _report(self, segment: _Segment) -> None:
        self.on_segment(
            truth.Segment(
                cause=segment.cause,
                part=segment.part,
                connection=self.connection,
                first_ns=segment.first_ns,
                last_ns=segment.last_ns,
                bytes_up=segment.bytes_up,
                bytes_down=segment.bytes_down,
                opening_bytes=segment.opening_bytes,
                records_up=segment.records_up,
                cut=segment.cut,
            )
        )
