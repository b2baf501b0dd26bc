"""Endpoints of a device: its flows grouped by remote name (or address when unnamed)."""

from __future__ import annotations

import pandas as pd

ENDPOINT_COLUMNS = [
    "name", "named", "name_sources", "addresses", "flows", "bytes_up", "bytes_down", "first_seen", "last_seen",
]  # fmt: skip


def device_endpoints(flows: pd.DataFrame) -> pd.DataFrame:
    """One row per remote endpoint of the device's flows, busiest first.

    ``name`` is the learned name or the remote address; ``named`` says which; ``first_seen`` and
    ``last_seen`` are epoch seconds (floats).
    """
    mine = flows[flows["device"]]
    if mine.empty:
        return pd.DataFrame(columns=ENDPOINT_COLUMNS)
    key = mine["name"].fillna(mine["remote_ip"])
    grouped = mine.assign(endpoint=key).groupby("endpoint", sort=False)
    out = pd.DataFrame(
        {
            "named": grouped["name"].agg(lambda s: s.notna().any()),
            "name_sources": grouped["name_source"].agg(lambda s: sorted(set(s) - {"none"})),
            "addresses": grouped["remote_ip"].agg(lambda s: sorted(set(s))),
            "flows": grouped.size(),
            "bytes_up": grouped["bytes_up"].sum(),
            "bytes_down": grouped["bytes_down"].sum(),
            "first_seen": grouped["first_ns"].min() / 1e9,
            "last_seen": grouped["last_ns"].max() / 1e9,
        }
    )
    out = out.rename_axis("name").reset_index()
    total = out["bytes_up"] + out["bytes_down"]
    return out.loc[total.sort_values(ascending=False, kind="stable").index, ENDPOINT_COLUMNS].reset_index(drop=True)
