"""The answers a run heard, for the report: transcript and the answer's stretch of its WAV as a
``data:`` URI, with the report's audio kept under a size cap."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from harness.errors import HarnessError
from harness.rundir.events import AnswerHeard, read_events
from harness.rundir.layout import RunDir
from harness.wav import read_wav, wav_bytes

AUDIO_CAP_BYTES = 20 * 2**20  # base64 text of all answers; beyond it the rest are not embedded
PAD_S = 0.25  # kept before and after the detected answer


@dataclass(frozen=True)
class Answer:
    transcript: str | None
    path: str  # relative to the run directory
    audio_uri: str | None  # None: not embedded (see Answers.notes)


@dataclass
class Answers:
    """Answers by the ``utterance_seq`` of the try they answer."""

    by_seq: dict[int, Answer] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_answers(run: RunDir, cap_bytes: int = AUDIO_CAP_BYTES) -> Answers:
    """Every ``answer`` event of the run's log, with its audio while the total stays under ``cap_bytes``."""
    result = Answers()
    if not run.events.is_file():
        return result
    heard = [e for e in read_events(run.events).events if isinstance(e, AnswerHeard)]
    total, skipped, unreadable = 0, 0, 0
    for event in heard:
        uri = None
        try:
            samples, rate = read_wav(run.resolve(event.path))
        except (HarnessError, OSError):
            unreadable += 1
        else:
            pad = int(PAD_S * rate)
            clip = samples[max(event.onset_index - pad, 0) : event.end_index + pad]
            data = base64.b64encode(wav_bytes(clip, rate)).decode("ascii")
            if total + len(data) <= cap_bytes:
                total += len(data)
                uri = f"data:audio/wav;base64,{data}"
            else:
                skipped += 1
        result.by_seq[event.started_seq] = Answer(event.transcript, event.path, uri)
    if skipped:
        result.notes.append(
            f"{skipped} of {len(heard)} answers are not embedded: the report keeps its audio under "
            f"{cap_bytes / 2**20:.0f} MB; play them from the run's answers/ folder"
        )
    if unreadable:
        result.notes.append(f"{unreadable} answer recordings are missing or unreadable")
    return result
