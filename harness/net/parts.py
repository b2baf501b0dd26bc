"""Reading captures in parts, on several cores, with the result of one pass in order.

:func:`plan` splits a list of captures into byte ranges: a file smaller than a part stays whole;
inside a larger one, the first record after each split is guessed from a chain of records found
there (:func:`harness.net.framing.guess_record`). :func:`read_part` reads one part into a
:class:`PartResult` (picklable: flows, names, counts, warnings, the device's packet rows, a
collector), and :func:`combine` puts the results of a plan together, in file order, into what
reading the files in one pass gives (:class:`harness.net.traffic.Readout`).

Exact by checking, not by trusting the guesses:

- where a part starts: the part before it reads on until its own framing reaches a record at or
  past its end; that record (with the pcapng section in force there) must be where the next part
  started, or the next part is read again from there (:func:`combine`, in the calling process);
- QUIC Initials are read in the combining process, in capture order (a connection's state
  spans parts, and there are few of them);
- names across a split: a TCP direction still in progress at a part's end (a ClientHello cut by
  the split) is fed the packets after the end, that direction alone (no flows, no new streams),
  until it finishes or :data:`READ_ON` bytes have passed; one still in progress then is fed in the
  combining process from any later part that has a SYN or data of it (that part is read again
  for it), and counts as incomplete if it never finishes. A direction that finished before a
  split and shows up again after it is ignored there, as one pass ignores it;
- DNS answers are kept as one pass keeps them (only those that change their address's name);
- warnings: damage ends its file (the later parts of that file are dropped), the reader's note is
  given once per file, and the counts behind the summary warnings add up.

Not reproduced: one pass forgets finished directions after 10 to 20 minutes of capture time
(:data:`harness.net.streams.DONE_WINDOW_NS`), counted from where it cut its batches; parts
count from their own start, so a direction that finished before a split and opens again more
than 10 minutes later may be read in one and ignored in the other.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from itertools import chain
from pathlib import Path

import numpy as np

from harness.errors import InputError, Place
from harness.net.decode import TCP, Packets, decode
from harness.net.flows import FlowAccumulator, canonical, flow_hash
from harness.net.framing import CHUNK, CaptureReader, Frames, Section, first_section, guess_record
from harness.net.streams import _Stream, sorted_member
from harness.net.traffic import Collector, Readout, _dirkey, _Names, _Reading, _size, damage_warning, name_changes
from harness.progress import Progress, no_progress

MIN_PART = 32 << 20  # smaller parts cost more in start-up and hand-over than they save
LARGE = 64 << 20  # inputs at least this large are read by all cores by default
READ_ON = 4 << 20  # bytes a part reads past its end for its TCP directions still in progress


@dataclass(frozen=True)
class Part:
    """The records of ``path`` (capture number ``file`` of the list) that start in [``start``,
    ``end``) (``end`` None: to the end of the file); ``section`` is the pcapng section in force at
    ``start``; ``follow`` is where the next part ends (its path and end), as far as a TCP
    direction in progress at ``end`` is followed."""

    file: int
    path: str
    start: int
    end: int | None
    section: Section | None = None
    follow: tuple[str, int | None] | None = None


@dataclass
class PartResult:
    """What one part gave. ``next_start``/``next_section``: the first record at or past the
    part's end and the section there, by this part's own framing (None: the file ends, or damage
    ended it, within the part); ``problem`` (message, byte offset) of damage inside the part,
    ``packets`` the records read before it; ``unsupported`` link types with their warning.
    ``left``: TCP directions still in progress after reading on, and ``resume``/``resume_section``
    the record of the next part where reading on stopped (None: it read all of it);
    ``touched``: the TCP directions with a SYN or data in the part (sorted) and the offset of
    the last such record of each; ``quic``: the QUIC Initials (flow hash, datagram), unread."""

    table: dict[str, np.ndarray]
    flow_names: dict[int, tuple[str, str]]
    answers: list[tuple[int, int, int, str]]
    bad_dns: int
    dropped: int
    left: dict[int, _Stream]
    resume: int | None
    resume_section: Section | None
    finished: np.ndarray
    touched: tuple[np.ndarray, np.ndarray]
    quic: list[tuple[int, bytes]]
    total: int
    packets: int
    unsupported: dict[int, str]
    notes: list[str]
    problem: tuple[str, int | None] | None
    next_start: int | None
    next_section: Section | None
    rows: list[tuple[np.ndarray, ...]]
    collector: Collector | None


def default_jobs(paths: list[str | Path]) -> int:
    """All cores for large inputs, else 1 (starting processes costs more than small files take);
    1 in a daemonic process (a pool's worker), which may not start processes of its own."""
    if sum(_size(p) for p in paths) < LARGE or multiprocessing.current_process().daemon:
        return 1
    return len(os.sched_getaffinity(0))


def plan(paths: list[str | Path], part_size: int) -> list[Part]:
    """The parts of ``paths``, in order: each file in about equal parts of about ``part_size``
    bytes (a split where no record chain is found is left out)."""
    parts: list[Part] = []
    for file, path in enumerate(paths):
        size = _size(path)
        count = -(-size // max(part_size, 1))
        section = first_section(Path(path)) if count > 1 else None
        starts, ends = [0], []
        for i in range(1, count):
            split = size * i // count
            guess = guess_record(Path(path), split, section)
            if guess is not None and guess > starts[-1] and guess >= split:
                starts.append(guess)
                ends.append(split)
        ends.append(None)
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            parts.append(Part(file, str(path), start, end, section if i else None))
    return [replace(p, follow=(nxt.path, nxt.end)) for p, nxt in zip(parts, parts[1:], strict=False)] + parts[-1:]


def read_part(
    part: Part, chunk: int = CHUNK, device_packets: bool = False, collector: Collector | None = None
) -> PartResult:
    """Read one part (``collector`` is copied, not changed: the result holds the copy)."""
    reading = _Reading(device_packets, copy.deepcopy(collector))
    reading.names.held = []
    touched = _Touched()
    reading.watch = touched
    reader = CaptureReader(Path(part.path), chunk, part.start, part.section)
    batches = iter(reader)
    rest: Frames | None = None  # the batch's records at or past the end
    for frames in batches:
        cut = len(frames) if part.end is None else int(np.searchsorted(frames.file_offset, part.end))
        if cut:
            reading.add(_take(frames, slice(0, cut)), part.path, part.file)
        if cut < len(frames):
            rest = _take(frames, slice(cut, None))
            break
    packets, next_section = reader.packets - (len(rest) if rest is not None else 0), reader.current_section()
    problem, next_start = None, None
    if rest is not None:
        next_start = int(rest.file_offset[0])
    elif reader.problem is not None:
        offset = reader.problem.place.offset
        if part.end is not None and offset is not None and offset >= part.end:
            next_start = offset  # damage that is the next part's: it finds it where it starts
        else:
            problem = (reader.problem.message, offset)
    names = reading.names
    resume: tuple[int | None, Section | None] = (None, None)
    if names.streams.active and part.follow is not None:
        path, end = part.follow
        if path == part.path and rest is not None:
            resume = _read_on(names, chain([rest], batches), _bound(part.end, end), reader)
        elif path != part.path:
            after = CaptureReader(Path(path), chunk)
            resume = _read_on(names, iter(after), _bound(0, end), after)
    return PartResult(
        reading.acc.result(),
        names.flow_names,
        names.answers,
        names.bad_dns,
        names.streams.dropped,
        names.streams.active,
        *resume,
        names.streams.finished_keys(),
        touched.result(),
        names.held,
        reading.total,
        packets,
        reading.unsupported,
        reader.notes,
        problem,
        next_start,
        next_section,
        reading.rows,
        reading.collector,
    )


def _bound(start: int | None, end: int | None) -> int | None:
    """Where reading on from ``start`` stops: after :data:`READ_ON` bytes or at ``end``."""
    if start is None:
        return end
    return start + READ_ON if end is None else min(end, start + READ_ON)


class _Touched:
    """The TCP directions with a SYN or data in the batches it is shown, with their last record."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []

    def __call__(self, p: Packets, a2b: np.ndarray, h: np.ndarray) -> None:
        ip = p.ip_rows()
        rows = np.flatnonzero((p.proto[ip] == TCP) & ((p.payload_len[ip] > 0) | ((p.tcp_flags[ip] & 0x02) != 0)))
        self.keys.append(_dirkey(h, a2b, rows))
        self.offsets.append(p.file_offset[ip][rows])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate(self.keys) if self.keys else np.empty(0, np.uint64)
        offsets = np.concatenate(self.offsets) if self.offsets else np.empty(0, np.int64)
        order = np.lexsort((offsets, keys))
        keys, offsets = keys[order], offsets[order]
        last = np.r_[keys[1:] != keys[:-1], True] if len(keys) else np.empty(0, bool)
        return keys[last], offsets[last]


@dataclass
class _Pending:
    """A TCP direction still in progress after the part that opened it and its reading on: where
    it is to be fed from (part number, and the record and section there, None: the part's start)."""

    stream: _Stream
    part: int
    offset: int | None = None
    section: Section | None = None


def combine(
    parts: list[Part],
    results: Iterable[PartResult],
    chunk: int = CHUNK,
    device_packets: bool = False,
    collector: Collector | None = None,
) -> Readout:
    """The readout of one pass over the files of ``parts`` from their ``results`` (in order).
    A part that did not start where the part before it ended is read again here; so are the
    stretches of a part that a TCP direction still in progress from an earlier part has data
    in; ``collector`` takes in the parts' collectors."""
    again = functools.partial(read_part, chunk=chunk, device_packets=device_packets, collector=copy.deepcopy(collector))
    acc = FlowAccumulator()
    names = _Names()
    warnings: list[str] = []
    problems: list[InputError] = []
    unsupported: set[int] = set()
    rows: list[tuple[np.ndarray, ...]] = []
    total = dropped = 0
    notes: list[str] = []
    finished = np.empty(0, np.uint64)  # directions finished so far
    pending: dict[int, _Pending] = {}
    before: PartResult | None = None  # the previous part of the same file
    packets = 0  # records of the file so far
    for i, (part, result) in enumerate(zip(parts, results, strict=True)):
        if part.start:
            assert before is not None  # a file's first part starts at 0
            if before.next_start is None:
                result = None  # the file ended before this part
            elif (before.next_start, before.next_section) != (part.start, part.section):
                part = replace(part, start=before.next_start, section=before.next_section)
                result = again(part)
        else:
            packets, notes, before = 0, [], None
        if result is not None:
            before = result
            finished = _feed(names, pending, i, part, result.touched, finished, chunk)
            packets += result.packets
            total += result.total
            if result.table:
                acc.add(result.table)
            for key, (name, source) in result.flow_names.items():
                names.name_flow(key, name, source)
            names.answers.extend(result.answers)
            names.bad_dns += result.bad_dns
            dropped += result.dropped
            for key, datagram in result.quic:
                names.name_flow(key, names.quic.datagram(datagram), "quic")
            left = np.fromiter(result.left, np.uint64, len(result.left))
            # one finished before this part would have been ignored, not opened again
            ended = sorted_member(finished, left).tolist()  # one search for all (per key: minutes at 10^5 keys)
            for (key, stream), was_done in zip(result.left.items(), ended, strict=True):
                if key not in pending and not was_done:
                    at = (i + 1, result.resume, result.resume_section) if result.resume is not None else (i + 2,)
                    pending[key] = _Pending(stream, *at)
            finished = np.union1d(finished, result.finished)
            rows.extend(result.rows)
            if collector is not None and result.collector is not None:
                collector.merge(result.collector)
            for lt, text in result.unsupported.items():
                if lt not in unsupported:
                    unsupported.add(lt)
                    warnings.append(text)
            notes = notes or result.notes  # the reader notes each kind once per file: the first part's
        if i + 1 == len(parts) or not parts[i + 1].start:
            warnings.extend(notes)
            if before is not None and before.problem is not None:
                message, offset = before.problem
                problems.append(InputError(part.path, message, Place(offset=offset)))
                warnings.append(damage_warning(problems[-1], packets))
    names.answers = list(name_changes({}, names.answers))  # each part kept its own changes, from no name
    return Readout(
        acc.result(),
        names,
        total,
        warnings,
        problems,
        names.bad_dns,
        dropped + sum(1 for p in pending.values() if p.stream.data),
        names.quic.failed,
        rows if device_packets else None,
    )


def _feed(
    names: _Names,
    pending: dict[int, _Pending],
    i: int,
    part: Part,
    touched: tuple[np.ndarray, np.ndarray],
    finished: np.ndarray,
    chunk: int,
) -> np.ndarray:
    """Feed the ``pending`` directions that part ``i`` has a SYN or data of (after where they
    were left), reading the part again for them alone; the others wait for the next part.
    Returns ``finished`` with the directions that finished."""
    keys, last = touched
    starts: dict[int, tuple[Section | None, list[int]]] = {}
    for key, wait in pending.items():
        if wait.part > i:
            continue
        at = int(np.searchsorted(keys, np.uint64(key)))
        if at < len(keys) and keys[at] == key:
            here = wait.part == i and wait.offset is not None
            if not here or last[at] >= wait.offset:
                start, section = (wait.offset, wait.section) if here else (part.start, part.section)
                starts.setdefault(start, (section, []))[1].append(key)
    ended = [finished]
    for start, (section, group) in starts.items():
        fed = _Names()
        fed.streams.active = {key: pending.pop(key).stream for key in group}
        reader = CaptureReader(Path(part.path), chunk, start, section)
        _read_on(fed, iter(reader), part.end, reader)
        for key, (name, source) in fed.flow_names.items():
            names.name_flow(key, name, source)
        names.answers.extend(fed.answers)
        names.bad_dns += fed.bad_dns
        ended.append(fed.streams.finished_keys())
        pending.update({key: _Pending(stream, i + 1) for key, stream in fed.streams.active.items()})
    for wait in pending.values():
        if wait.part <= i:
            wait.part, wait.offset, wait.section = i + 1, None, None
    return np.unique(np.concatenate(ended)) if len(ended) > 1 else finished  # one sort, not one per group


def read(
    paths: list[str | Path],
    chunk: int = CHUNK,
    jobs: int = 1,
    part_size: int | None = None,
    device_packets: bool = False,
    collector: Collector | None = None,
    progress: Progress = no_progress,
) -> Readout:
    """Read ``paths`` in parts with ``jobs`` processes (forked) and combine them; ``progress``
    hears "reading captures" with the bytes of the parts read so far."""
    sizes = [_size(p) for p in paths]
    size = part_size or max(MIN_PART, -(-sum(sizes) // (2 * jobs)))
    parts = plan(paths, size)
    task = functools.partial(read_part, chunk=chunk, device_packets=device_packets, collector=collector)
    jobs = min(jobs, len(parts))
    if jobs <= 1:
        return combine(parts, _reported(parts, map(task, parts), sizes, progress), chunk, device_packets, collector)
    import numpy.ma  # noqa: F401  np.unique loads it on first use (20 ms): once here, not in each process

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        results = _reported(parts, pool.imap(task, parts), sizes, progress)
        return combine(parts, results, chunk, device_packets, collector)


def _reported(
    parts: list[Part], results: Iterable[PartResult], sizes: list[int], progress: Progress
) -> Iterator[PartResult]:
    """``results`` with progress in bytes after each part."""
    for part, result in zip(parts, results, strict=True):
        end = sizes[part.file] if part.end is None else part.end
        progress("reading captures", sum(sizes[: part.file]) + end, sum(sizes))
        yield result


def _read_on(
    names: _Names, batches: Iterator[Frames], end: int | None, reader: CaptureReader
) -> tuple[int | None, Section | None]:
    """Feed the TCP directions in progress in ``names`` with the packets of ``batches`` (theirs
    alone) that start before ``end``, until none is in progress; directions opened meanwhile are
    not kept. Returns the first record not read and the section there (None: none was left
    before ``end``)."""
    carried = set(names.streams.active)
    for frames in batches:
        cut = len(frames) if end is None else int(np.searchsorted(frames.file_offset, end))
        if cut:
            _feed_batch(names, carried, _take(frames, slice(0, cut)))
        if cut < len(frames) and carried:
            return int(frames.file_offset[cut]), reader.current_section()
        if not carried or cut < len(frames):
            break
    return None, None


def _feed_batch(names: _Names, carried: set[int], frames: Frames) -> None:
    p = decode(frames)
    keys, a2b = canonical(p)
    if len(a2b):
        h = flow_hash(keys)
        ip = p.ip_rows()
        dk = _dirkey(h, a2b, np.arange(len(h)))
        sel = np.flatnonzero((p.proto[ip] == TCP) & np.isin(dk, np.fromiter(carried, np.uint64, len(carried))))
        if len(sel):
            rows = sel if isinstance(ip, slice) else ip[sel]
            names.scan(_subset(p, rows), a2b[sel], h[sel])
    for key in [k for k in names.streams.active if k not in carried]:
        del names.streams.active[key]
    carried &= names.streams.active.keys()


def _take(frames: Frames, rows: slice) -> Frames:
    return Frames(
        **{
            f.name: getattr(frames, f.name) if f.name == "buf" else getattr(frames, f.name)[rows]
            for f in fields(Frames)
        }
    )


def _subset(p: Packets, rows: np.ndarray) -> Packets:
    return Packets(
        **{f.name: getattr(p, f.name) if f.name == "buf" else getattr(p, f.name)[rows] for f in fields(Packets)}
    )
