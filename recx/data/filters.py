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


def count_unique(codes: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Distinct values of non-negative integer codes (bincount: no hashing, no sort)."""
    if mask is not None:
        codes = codes[mask]
    if len(codes) == 0:
        return 0
    return int(np.count_nonzero(np.bincount(codes)))


def counts(frame: pd.DataFrame) -> dict:
    return counts_arrays(frame["user"].to_numpy(), frame["item"].to_numpy())


def counts_arrays(user: np.ndarray, item: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Users, items and interactions of the rows selected by `mask` (all when None)."""
    n = len(user) if mask is None else int(np.count_nonzero(mask))
    return {"users": count_unique(user, mask), "items": count_unique(item, mask),
            "interactions": n}


BLOCK_ROWS = 2_000_000  # dedup hashes users in blocks of about this many rows


def dedup_mask(user: np.ndarray, item: np.ndarray, ts: np.ndarray, how: str
               ) -> np.ndarray | None:
    """Rows kept by `dedup` as a boolean mask, or None when every row is kept.

    Rows are in file order, so the row position is the `order` tie-breaker. A hash pass finds
    the repeated (user, item) pairs; only those rows are sorted. Large inputs are split into
    blocks of users (a repeat never crosses users), so the hash table stays small.
    """
    if how == "all":
        return None
    if how not in ("earliest", "first_row"):
        raise ConfigError(f"unknown filters.dedup={how!r}",
                          hint="use filters.dedup=earliest, first_row or all")
    n = len(user)
    if n == 0:
        return None
    n_items = int(item.max()) + 1
    blocks = -(-n // BLOCK_ROWS)
    if blocks == 1:
        drop = _dup_drop(user, item, ts, how, n_items)
        return None if drop is None else ~drop
    n_users = int(user.max()) + 1
    block = (user.astype(np.int64) * blocks // n_users).astype(np.int16)
    keep = np.ones(n, dtype=bool)
    for b in range(blocks):
        rows = np.flatnonzero(block == b)  # ascending: file order within the block
        drop = _dup_drop(user[rows], item[rows], ts[rows], how, n_items)
        if drop is not None:
            keep[rows[drop]] = False
    return None if keep.all() else keep


def dedup_rows(user: np.ndarray, item: np.ndarray, ts: np.ndarray, how: str) -> np.ndarray | None:
    """Kept row positions (ascending) of `dedup_mask`, or None when every row is kept."""
    keep = dedup_mask(user, item, ts, how)
    return None if keep is None else np.flatnonzero(keep)


def _dup_drop(user, item, ts, how: str, n_items: int) -> np.ndarray | None:
    """Boolean mask of the rows dedup removes (None when none)."""
    keys = user.astype(np.int64) * n_items + item.astype(np.int64)
    dup = np.array(pd.Series(keys, copy=False).duplicated(keep=False))  # writable
    if not dup.any():
        return None
    rows = np.flatnonzero(dup)
    k = keys[rows]
    del keys
    # earliest: earliest ts, then file order; first_row: file order (both sorts are stable, so
    # equal keys keep their file order without a third sort key)
    order = np.lexsort((ts[rows], k)) if how == "earliest" else np.argsort(k, kind="stable")
    ks = k[order]
    first = np.ones(len(ks), dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    drop = dup  # reuse: start from "every repeated row", then spare the first of each pair
    drop[rows[order[first]]] = False
    return drop


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


def min_rating_mask(rating: np.ndarray | None, threshold: float | None) -> np.ndarray | None:
    if threshold is None:
        return None
    if rating is None:
        raise ConfigError("filters.min_rating is set but the data has no rating column",
                          hint="map dataset.columns.rating=<column> or set "
                          "dataset.filters.min_rating=null")
    return rating >= threshold


def min_rating_rows(rating: np.ndarray | None, threshold: float | None) -> np.ndarray | None:
    keep = min_rating_mask(rating, threshold)
    return None if keep is None else np.flatnonzero(keep)


def min_rating(frame: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    rows = min_rating_rows(frame["rating"].to_numpy() if "rating" in frame.columns else None,
                           threshold)
    return frame if rows is None else frame.iloc[rows].reset_index(drop=True)


def k_core_mask(u: np.ndarray, i: np.ndarray, k_user: int, k_item: int,
                iterative: bool = True, keep: np.ndarray | None = None) -> np.ndarray | None:
    """Rows kept by the k-core filter as a boolean mask (starting from the rows `keep`
    selects), or None when nothing is selected out at all."""
    if (k_user <= 1 and k_item <= 1) or len(u) == 0:
        return keep
    nu, ni = int(u.max()) + 1, int(i.max()) + 1
    changed = keep is not None
    keep = np.ones(len(u), dtype=bool) if keep is None else keep.copy()
    while True:
        uc = np.bincount(u[keep] if changed else u, minlength=nu)
        ic = np.bincount(i[keep] if changed else i, minlength=ni)
        # per-user / per-item verdicts first: gathering booleans keeps temporaries at 1 byte/row
        bad = (uc < k_user)[u]
        bad |= (ic < k_item)[i]
        bad &= keep
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
