"""Repeat (user, item) pairs: the data fact the candidate policy follows (EVALUATION §3).

A domain whose data hold no repeated pair (deduplicated) can never have a target among its user's
history items, so every model's candidates exclude that history; a domain that keeps repeats
masks nothing. Both facts are counted here once, for `stats.json` and for the evaluator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recx.data.scenarios import SPLIT_CODES


def repeat_events(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """[E] bool: the event repeats a (user, item) pair that occurs earlier in the arrays (which
    are sorted by user and time, so "earlier" is the user's visible history)."""
    key = user.astype(np.int64) * (int(n_items) + 1) + item
    return pd.Series(key, copy=False).duplicated(keep="first").to_numpy()


def summary(repeat: np.ndarray, user: np.ndarray, split: np.ndarray,
            indptr: np.ndarray) -> dict:
    """Repeat events and, per split, the targets (with a history) that repeat a history item."""
    n = len(repeat)
    out = {"events": int(repeat.sum()), "share": float(repeat.mean()) if n else 0.0}
    for name in ("valid", "test"):
        pos = np.flatnonzero(split == SPLIT_CODES[name])
        pos = pos[pos > indptr[user[pos]]]  # a query needs at least one history event
        rep = int(repeat[pos].sum())
        out[f"{name}_targets"] = rep
        out[f"{name}_target_share"] = rep / len(pos) if len(pos) else 0.0
    return out


def policy(repeats: dict) -> str:
    """The domain's candidate policy: `mask=on` when the data hold no repeated pair."""
    return "mask=on" if repeats["events"] == 0 else "mask=off"
