"""Explicit filters applied in order: dedup, rating threshold, iterative k-core.

Frames here carry integer codes (`user`, `item` as factorised raw ids), `ts` and `order`, so every
step is a numpy operation and memory stays proportional to the number of rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recx.errors import ConfigError


def counts(frame: pd.DataFrame) -> dict:
    return {
        "users": int(frame["user"].nunique()),
        "items": int(frame["item"].nunique()),
        "interactions": int(len(frame)),
    }


def dedup(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    """Keep one event per (user, item): the earliest (`earliest`), the first in file order
    (`first_row`, PrepRec's original behaviour), or keep repeats (`all`)."""
    if how == "all":
        return frame
    if how not in ("earliest", "first_row"):
        raise ConfigError(f"unknown filters.dedup={how!r}",
                          hint="use filters.dedup=earliest, first_row or all")
    keys = frame["user"].to_numpy(np.int64) * (int(frame["item"].max()) + 1) + frame[
        "item"].to_numpy(np.int64)
    if how == "earliest":
        order = np.lexsort((frame["order"].to_numpy(), frame["ts"].to_numpy(), keys))
    else:
        order = np.lexsort((frame["order"].to_numpy(), keys))
    k = keys[order]
    first = np.ones(len(k), dtype=bool)
    first[1:] = k[1:] != k[:-1]
    keep = np.sort(order[first])
    return frame.iloc[keep].reset_index(drop=True)


def min_rating(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    if threshold is None:
        return frame
    if "rating" not in frame.columns:
        raise ConfigError("filters.min_rating is set but the data has no rating column",
                          hint="map dataset.columns.rating=<column> or set "
                          "dataset.filters.min_rating=null")
    return frame[frame["rating"].to_numpy() >= threshold].reset_index(drop=True)


def k_core(frame: pd.DataFrame, k_user: int, k_item: int, iterative: bool = True) -> pd.DataFrame:
    """Drop users with < k_user events and items with < k_item events, until stable."""
    if k_user <= 1 and k_item <= 1:
        return frame
    u = frame["user"].to_numpy()
    i = frame["item"].to_numpy()
    keep = np.ones(len(frame), dtype=bool)
    while True:
        uc = np.bincount(u[keep], minlength=int(u.max()) + 1 if len(u) else 1)
        ic = np.bincount(i[keep], minlength=int(i.max()) + 1 if len(i) else 1)
        bad = keep & ((uc[u] < k_user) | (ic[i] < k_item))
        if not bad.any():
            break
        keep &= ~bad
        if not iterative:
            break
    return frame[keep].reset_index(drop=True)
