"""Named split protocols (EVALUATION §1). Input: events sorted by (user, ts, order).

Split codes per event: TRAIN=0, VALID=1 (a valid target), TEST=2 (a test target), HELD=3 (not a
target and not trained on; global_time only). In every scenario a user's training events form a
prefix of that user's sequence, and a query's history is every event of the user before its
target.
"""

from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST, HELD = 0, 1, 2, 3
SPLIT_CODES = {"valid": VALID, "test": TEST}


def leave_one_out(indptr: np.ndarray, ts: np.ndarray, **_) -> np.ndarray:
    """Chronological leave-one-out per user.

    ```
    user u:   e1  e2  e3  …  e(n-2)  e(n-1)   e(n)
              └──────── train ────────┘  valid    test
    ```
    Users with fewer than 3 events keep what they have as training (2 events: train + test).
    """
    n = len(ts)
    split = np.zeros(n, dtype=np.int8)
    lengths = np.diff(indptr)
    ends = indptr[1:]
    has_test = lengths >= 2
    split[ends[has_test] - 1] = TEST
    has_valid = lengths >= 3
    split[ends[has_valid] - 2] = VALID
    return split


def global_time(indptr: np.ndarray, ts: np.ndarray, *, valid_quantile: float = 0.8,
                test_quantile: float = 0.9, t_valid: int | None = None,
                t_test: int | None = None, **_) -> np.ndarray:
    """Global temporal split.

    ```
    time ───────────────|t_valid──────────|t_test─────────────→
         train events    first event=valid  first event=test, later events held
    ```
    """
    if t_valid is None:
        t_valid = int(np.quantile(ts, valid_quantile))
    if t_test is None:
        t_test = int(np.quantile(ts, test_quantile))
    split = np.full(len(ts), HELD, dtype=np.int8)
    split[ts < t_valid] = TRAIN
    n_users = len(indptr) - 1
    user = np.repeat(np.arange(n_users), np.diff(indptr))
    for code, lo, hi in ((VALID, t_valid, t_test), (TEST, t_test, np.iinfo(np.int64).max)):
        in_win = np.flatnonzero((ts >= lo) & (ts < hi))
        if len(in_win):
            u = user[in_win]
            first = np.ones(len(in_win), dtype=bool)
            first[1:] = u[1:] != u[:-1]
            split[in_win[first]] = code
    return split


SCENARIOS = {"leave_one_out": leave_one_out, "global_time": global_time}
