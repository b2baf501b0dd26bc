"""The flow table's joins on numpy: as-of lookups per address and address codes, against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.net import addresses
from harness.net.flow_table import _AsOf


def _oracle(left: pd.DataFrame, right: pd.DataFrame, direction: str) -> np.ndarray:
    """pandas' as-of join by address: the right row each left row gets (-1: none)."""
    right = right.assign(row=np.arange(len(right))).sort_values("ts", kind="stable")
    joined = pd.merge_asof(
        left.sort_values("ts", kind="stable"), right, on="ts", by="code", direction=direction, suffixes=("", "_r")
    )
    return joined.sort_values("left")["row"].fillna(-1).to_numpy(np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_as_of_lookups_agree_with_pandas(seed: int) -> None:
    # few addresses and few instants: many entries share both, where the choice among them shows
    rng = np.random.default_rng(seed)
    left = pd.DataFrame({"code": rng.integers(0, 6, 400), "ts": rng.integers(0, 40, 400) * 1000})
    left = left.assign(left=np.arange(len(left)))
    right = pd.DataFrame({"code": rng.integers(0, 8, 150), "ts": rng.integers(0, 40, 150) * 1000})
    asof = _AsOf(left["code"].to_numpy(), left["ts"].to_numpy(), right["code"].to_numpy(), right["ts"].to_numpy())
    for direction, got in (("backward", asof.backward()), ("forward", asof.forward())):
        rows = asof.right_row[got]  # sorted positions back to rows as given
        np.testing.assert_array_equal(rows, _oracle(left, right, direction), err_msg=direction)
    np.testing.assert_array_equal(asof.nearest(), _oracle(left, right, "nearest"))


def test_as_of_without_entries() -> None:
    asof = _AsOf(np.array([0, 1]), np.array([5, 6]), np.empty(0, np.int64), np.empty(0, np.int64))
    assert asof.nearest().tolist() == [-1, -1]


def test_address_codes_number_distinct_addresses_in_order() -> None:
    rng = np.random.default_rng(1)
    hi = rng.integers(0, 3, 500).astype(np.uint64) << np.uint64(62)
    lo = rng.integers(0, 40, 500).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15 >> 2)
    code, first = addresses.codes(hi, lo)
    uniq, inverse = np.unique(np.stack([hi, lo], axis=1), axis=0, return_inverse=True)
    np.testing.assert_array_equal(code, inverse.ravel())
    np.testing.assert_array_equal(np.stack([hi[first], lo[first]], axis=1), uniq)
    assert all(first[c] == np.flatnonzero(code == c)[0] for c in range(len(first)))  # each code's first row
    assert addresses.codes(np.empty(0, np.uint64), np.empty(0, np.uint64))[0].tolist() == []
    assert addresses.texts(np.empty(0, np.uint64), np.empty(0, np.uint64)).tolist() == []
