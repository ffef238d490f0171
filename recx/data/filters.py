"""Explicit filters applied in order: dedup, rating threshold, iterative k-core.

Frames here carry integer codes (`user`, `item` as factorised raw ids), `ts` and `order`, so every
step is a numpy operation and memory stays proportional to the number of rows. The `*_mask`
functions work on bare arrays and return boolean masks; `recx.data.process` uses them to avoid
copying whole frames between steps.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from recx.errors import ConfigError

COUNT_SLICE = 1 << 20  # rows per bincount call (it casts its input to int64: 8 bytes a row)


def code_counts(codes: np.ndarray, mask: np.ndarray | None = None, minlength: int = 0
                ) -> np.ndarray:
    """`np.bincount(codes[mask], minlength)` in slices, so that neither the selection nor
    bincount's int64 copy of it is ever made for the whole column."""
    size = max(minlength, int(codes.max()) + 1 if len(codes) else 0)
    out = np.zeros(size, dtype=np.int64)
    for k in range(0, len(codes), COUNT_SLICE):
        part = codes[k:k + COUNT_SLICE]
        if mask is not None:
            part = part[mask[k:k + COUNT_SLICE]]
        out += np.bincount(part, minlength=size)
    return out


def count_unique(codes: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Distinct values of non-negative integer codes (bincount: no hashing, no sort)."""
    return int(np.count_nonzero(code_counts(codes, mask)))


def counts_arrays(user: np.ndarray, item: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Users, items and interactions of the rows selected by `mask` (all when None)."""
    n = len(user) if mask is None else int(np.count_nonzero(mask))
    return {"users": count_unique(user, mask), "items": count_unique(item, mask),
            "interactions": n}


DEDUP_BLOCK_ROWS = 1 << 16  # rows per hash pass: a table this small stays in the CPU cache


def dedup_sorted_mask(user: np.ndarray, item: np.ndarray, rows: np.ndarray | None, how: str
                      ) -> np.ndarray | None:
    """Rows kept by `dedup` as a boolean mask, or None when every row is kept.

    The arrays must be sorted by (user, ts, file row), with `rows` the file row of each (only
    `first_row` needs it). Then a repeat never leaves its user's contiguous segment, so the
    rows are hashed in small blocks cut at user boundaries (about 10× faster than one big hash
    table), and for `earliest` the first occurrence in sorted order is the one to keep.
    """
    if how == "all":
        return None
    if how not in ("earliest", "first_row"):
        raise ConfigError(f"unknown filters.dedup={how!r}",
                          hint="use filters.dedup=earliest, first_row or all")
    n = len(user)
    if n == 0:
        return None
    starts = np.flatnonzero(user[1:] != user[:-1]) + 1  # where a new user begins
    wanted = np.arange(DEDUP_BLOCK_ROWS, n, DEDUP_BLOCK_ROWS)
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, wanted), len(starts) - 1)]) \
        if len(starts) else np.zeros(0, dtype=np.int64)
    bounds = np.concatenate([[0], cuts, [n]])
    n_items = int(item.max()) + 1
    drop = np.zeros(n, dtype=bool)
    for a, b in itertools.pairwise(bounds):
        keys = (user[a:b].astype(np.int64) - int(user[a])) * n_items + item[a:b]
        s = pd.Series(keys, copy=False)
        if how == "earliest":
            drop[a:b] = s.duplicated(keep="first").to_numpy()
            continue
        dup = np.flatnonzero(s.duplicated(keep=False).to_numpy())
        if len(dup):  # keep the repeat that comes first in the file
            k = keys[dup]
            o = np.lexsort((rows[a:b][dup], k))
            first = np.ones(len(o), dtype=bool)
            first[1:] = k[o][1:] != k[o][:-1]
            drop[a + dup[o[~first]]] = True
    return ~drop if drop.any() else None


def dedup(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    """Keep one event per (user, item): the earliest (`earliest`), the first in file order
    (`first_row`, PrepRec's original behaviour), or keep repeats (`all`).

    Ties break on the frame's `order` column (else the row position); rows come back in their
    input order.
    """
    if how == "all":
        return frame
    n = len(frame)
    order_col = frame["order"].to_numpy() if "order" in frame else np.arange(n)
    pos = np.lexsort((order_col, frame["ts"].to_numpy(), frame["user"].to_numpy()))
    keep = dedup_sorted_mask(frame["user"].to_numpy()[pos], frame["item"].to_numpy()[pos],
                             order_col[pos], how)
    if keep is None:
        return frame.reset_index(drop=True)
    return frame.iloc[np.sort(pos[keep])].reset_index(drop=True)


def min_rating_mask(rating: np.ndarray | None, threshold: float | None) -> np.ndarray | None:
    if threshold is None:
        return None
    if rating is None:
        raise ConfigError("filters.min_rating is set but the data has no rating column",
                          hint="map dataset.columns.rating=<column> or set "
                          "dataset.filters.min_rating=null")
    return rating >= threshold


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
        uc = code_counts(u, keep if changed else None, nu)
        ic = code_counts(i, keep if changed else None, ni)
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
