"""Run independent pieces of work on Dask: all local cores by default, a cluster when asked.

The same path either way: a ``dask.distributed`` client, over a ``LocalCluster`` of worker
processes (one thread each, ``memory_limit`` each: a worker that grows past it is restarted by
its nanny and its task retried) or connected to a running scheduler (``tcp://host:port``, whose
workers must see the same files). Every piece is retried ``retries`` times; one that still
fails is reported with its message while the others' results are kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError


@dataclass
class Outcome:
    done: list[Any] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, message)


@dataclass(frozen=True)
class Engine:
    """Where work runs: ``scheduler`` an address, else a local cluster of ``workers`` processes."""

    scheduler: str | None = None
    workers: int | None = None
    memory_limit: str = "auto"
    retries: int = 2

    def describe(self) -> str:
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        return f"local Dask cluster, {self.workers or os.cpu_count() or 1} worker process(es)"


Piece = tuple[Callable[[Any], Any], Any]


def run(
    engine: Engine,
    fn: Callable[..., Any],
    items: Sequence[tuple[str, Any]],
    on_done: Callable[[str, bool], None] | None = None,
    pieces: Callable[[Any], Sequence[Piece]] | None = None,
) -> Outcome:
    """``fn(item)`` for every ``(key, item)``, in parallel; ``on_done(key, ok)`` as each ends.

    ``pieces(item)`` (run here, before submitting) may split an item's heavy work into
    independent pieces ``(f, x)``: each ``f(x)`` is a task of its own, on any worker, and the item's
    task becomes ``fn(item, *their results)``; a piece that fails fails its item."""
    outcome = Outcome()
    if not items:
        return outcome
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if engine.scheduler:
            client = Client(engine.scheduler, timeout="10s")
        else:
            cluster = LocalCluster(
                n_workers=engine.workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                memory_limit=engine.memory_limit,
                dashboard_address=":0",  # any free port: several clusters may share a machine
                silence_logs=logging.CRITICAL,
            )
            client = Client(cluster)
    except (OSError, TimeoutError, ValueError, RuntimeError) as exc:
        if cluster is not None:
            cluster.close()
        raise HarnessError(f"cannot start the {engine.describe()}: {exc}") from None
    try:
        futures = {}
        for key, item in items:
            parts = [
                client.submit(f, x, key=f"{key}#{n}", retries=engine.retries, pure=False)
                for n, (f, x) in enumerate(pieces(item) if pieces else ())
            ]
            futures[client.submit(fn, item, *parts, key=key, retries=engine.retries, pure=False)] = key
        for future in as_completed(futures):
            key = futures[future]
            if future.status == "finished":
                outcome.done.append(future.result())
            else:
                outcome.failed.append((key, _message(future.exception(), engine)))
            if on_done is not None:
                on_done(key, future.status == "finished")
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return outcome


def _message(exc: BaseException | None, engine: Engine) -> str:
    if type(exc).__name__ == "KilledWorker":  # the nanny ended a worker (memory) or it crashed, each try
        limit = "" if engine.scheduler else f" of {engine.memory_limit} per worker"
        return (
            f"its worker process died on every try (most often: past the memory limit{limit}; "
            "give workers more memory with --memory-limit, or use fewer workers)"
        )
    text = str(exc) if exc is not None else "unknown error"
    return text or type(exc).__name__
