"""Explicit filters applied in order: dedup, rating threshold, iterative k-core.

Frames here carry integer codes (`user`, `item` as factorised raw ids), `ts` and `order`, so every
step is a numpy operation and memory stays proportional to the number of rows. The `*_rows`
functions work on bare arrays and return the kept row positions in file order;
`recx.data.process` uses them to avoid copying whole frames between steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recx.errors import ConfigError


def count_unique(codes: np.ndarray) -> int:
    """Distinct values of non-negative integer codes (bincount: no hashing, no sort)."""
    if len(codes) == 0:
        return 0
    return int(np.count_nonzero(np.bincount(codes)))


def counts(frame: pd.DataFrame) -> dict:
    return counts_arrays(frame["user"].to_numpy(), frame["item"].to_numpy())


def counts_arrays(user: np.ndarray, item: np.ndarray) -> dict:
    return {"users": count_unique(user), "items": count_unique(item),
            "interactions": len(user)}


def dedup_rows(user: np.ndarray, item: np.ndarray, ts: np.ndarray, how: str) -> np.ndarray | None:
    """Rows kept by `dedup` (ascending positions), or None when every row is kept.

    Rows are in file order, so the row position is the `order` tie-breaker. A hash pass finds
    the repeated (user, item) pairs; only those rows are sorted.
    """
    if how == "all":
        return None
    if how not in ("earliest", "first_row"):
        raise ConfigError(f"unknown filters.dedup={how!r}",
                          hint="use filters.dedup=earliest, first_row or all")
    if len(user) == 0:
        return None
    n_items = int(item.max()) + 1
    keys = user.astype(np.int64) * n_items + item.astype(np.int64)
    dup = pd.Series(keys, copy=False).duplicated(keep=False).to_numpy()
    if not dup.any():
        return None
    rows = np.flatnonzero(dup)
    k = keys[rows]
    # earliest: earliest ts, then file order; first_row: file order
    order = np.lexsort((rows, ts[rows], k)) if how == "earliest" else np.lexsort((rows, k))
    ks = k[order]
    first = np.ones(len(ks), dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    keep = ~dup
    keep[rows[order[first]]] = True
    return np.flatnonzero(keep)


def dedup(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    """Keep one event per (user, item): the earliest (`earliest`), the first in file order
    (`first_row`, PrepRec's original behaviour), or keep repeats (`all`).

    Ties break on the frame's `order` column; rows come back in their input order.
    """
    if how == "all":
        return frame
    order_col = frame["order"].to_numpy() if "order" in frame else np.arange(len(frame))
    # dedup_rows breaks ties by position: sort by `order` first when the frame is not in order
    perm = None
    if len(order_col) > 1 and np.any(np.diff(order_col) < 0):
        perm = np.argsort(order_col, kind="stable")
    sub = frame if perm is None else frame.iloc[perm]
    keep = dedup_rows(sub["user"].to_numpy(), sub["item"].to_numpy(), sub["ts"].to_numpy(), how)
    if keep is None:
        return frame.reset_index(drop=True)
    rows = keep if perm is None else np.sort(perm[keep])
    return frame.iloc[rows].reset_index(drop=True)


def min_rating_rows(rating: np.ndarray | None, threshold: float | None) -> np.ndarray | None:
    if threshold is None:
        return None
    if rating is None:
        raise ConfigError("filters.min_rating is set but the data has no rating column",
                          hint="map dataset.columns.rating=<column> or set "
                          "dataset.filters.min_rating=null")
    return np.flatnonzero(rating >= threshold)


def min_rating(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    rows = min_rating_rows(frame["rating"].to_numpy() if "rating" in frame.columns else None,
                           threshold)
    return frame if rows is None else frame.iloc[rows].reset_index(drop=True)


def k_core_mask(u: np.ndarray, i: np.ndarray, k_user: int, k_item: int,
                iterative: bool = True) -> np.ndarray | None:
    """Rows kept by the k-core filter as a boolean mask, or None when all are kept."""
    if (k_user <= 1 and k_item <= 1) or len(u) == 0:
        return None
    keep = np.ones(len(u), dtype=bool)
    nu, ni = int(u.max()) + 1, int(i.max()) + 1
    changed = False
    while True:
        uc = np.bincount(u, weights=keep, minlength=nu) if changed else np.bincount(u,
                                                                                  minlength=nu)
        ic = np.bincount(i, weights=keep, minlength=ni) if changed else np.bincount(i,
                                                                                  minlength=ni)
        bad = keep & ((uc[u] < k_user) | (ic[i] < k_item))
        if not bad.any():
            break
        keep &= ~bad
        changed = True
        if not iterative:
            break
    return keep if changed else None


def k_core(frame: pd.DataFrame, k_user: int, k_item: int, iterative: bool = True) -> pd.DataFrame:
    """Drop users with < k_user events and items with < k_item events, until stable."""
    keep = k_core_mask(frame["user"].to_numpy(), frame["item"].to_numpy(), k_user, k_item,
                       iterative)
    return frame if keep is None else frame[keep].reset_index(drop=True)
