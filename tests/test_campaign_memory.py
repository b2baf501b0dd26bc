"""A worker that outgrows its memory limit is killed by its nanny: its piece is reported, the others are kept.

Real: a local Dask cluster whose worker really grows past its limit and is really terminated.
"""

from __future__ import annotations

import sys

import cloudpickle
import numpy as np

from harness.campaign import engine
from harness.campaign.engine import Engine

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module

LIMIT = "400MiB"


def _piece(size_mib: int) -> int:
    """Holds ``size_mib`` MiB, touched page by page, long enough for the nanny to look."""
    import time

    held = np.ones(size_mib << 17, np.float64)  # 2**17 float64 = 1 MiB
    time.sleep(3)
    return int(held[:1].sum()) * size_mib


def test_a_piece_past_the_memory_limit_fails_alone(tmp_path) -> None:
    items = [("small", 20), ("huge", 2048), ("also-small", 30)]
    outcome = engine.run(Engine(workers=2, memory_limit=LIMIT, retries=0), _piece, items)
    assert sorted(outcome.done) == [20, 30]
    assert [key for key, _ in outcome.failed] == ["huge"]
    message = outcome.failed[0][1]
    assert message.startswith("its worker process died on every try (most often: past the memory limit of 400MiB")
