"""Splits leak nothing (EVALUATION §1.4) and filters do what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recx.data import filters
from recx.data.domain import domain_from_frame
from recx.data.scenarios import HELD, TEST, TRAIN, VALID
from recx.data.sequences import query_batch, windows_every_position
from tests.conftest import timeline_frame

EVENTS = {  # u1 has two events at ts 3: input order decides (x before y)
    "u1": [("a", 1), ("b", 2), ("x", 3), ("y", 3), ("c", 5)],
    "u2": [("b", 1), ("c", 2), ("d", 3), ("e", 4)],
    "u3": [("e", 1), ("a", 2), ("d", 3), ("b", 4), ("c", 6), ("x", 7)],
}


def test_leave_one_out_three_users():
    d = domain_from_frame(timeline_frame(EVENTS), "t")
    raw = d.items["raw_id"].to_numpy()
    seq = {u: raw[d.item[d.indptr[u]:d.indptr[u + 1]] - 1].tolist() for u in (1, 2, 3)}
    assert seq[1] == ["a", "b", "x", "y", "c"]  # equal timestamps keep input order
    assert d.split[d.indptr[1]:d.indptr[2]].tolist() == [TRAIN, TRAIN, TRAIN, VALID, TEST]
    # training-prefix count = Σ_u (n_u − 3): 2 + 1 + 3 prefixes with a predecessor
    assert int((d.n_train[1:] - 1).sum()) == sum(len(v) - 3 for v in EVENTS.values())
    for split in ("valid", "test"):
        q = d.queries(split)
        # no query target is a training event, and histories end right before the target
        assert not d.train_mask[q.pos].any()
        batch = query_batch(d, q.pos, max_len=10)
        assert (batch.event_idx.max(1) == q.pos - 1).all()
    # every-position training windows only ever contain training events
    first = np.zeros(len(d.item), bool)
    first[d.indptr[1:-1]] = True
    for stride in (1, 2):
        w_end, w_start, w_first = windows_every_position(d, d.train_users(), 2, stride)
        covered = np.zeros(len(d.item), int)
        for e, s, f in zip(w_end, w_start, w_first, strict=True):
            assert d.train_mask[s:e].all() and e - s <= 3 and s < f <= e - 1
            covered[f:e] += 1  # the window's targets
        # every training event except each user's first is a target exactly once
        assert (covered == (d.train_mask & ~first)).all()


def test_global_time_split():
    d = domain_from_frame(timeline_frame(EVENTS), "t", scenario="global_time")
    # 80% / 90% quantiles of the timestamps → t_valid = 4, t_test = 5.4 (floored to int 5)
    u3 = d.split[d.indptr[3]:d.indptr[4]].tolist()
    assert u3 == [TRAIN, TRAIN, TRAIN, VALID, TEST, HELD]
    assert not d.train_mask[d.queries("test").pos].any()


def test_dedup_and_k_core():
    f = pd.DataFrame({"user": [0, 0, 0, 1, 1, 2], "item": [5, 5, 6, 5, 6, 5],
                      "ts": [9, 3, 4, 1, 2, 1], "order": np.arange(6)})
    assert filters.dedup(f, "earliest")["ts"].tolist() == [3, 4, 1, 2, 1]
    assert filters.dedup(f, "first_row")["ts"].tolist() == [9, 4, 1, 2, 1]
    assert len(filters.dedup(f, "all")) == 6
    # 2-core: user 2 (1 event) goes; then item 6 still has 2 users; stable
    core = filters.k_core(filters.dedup(f, "earliest"), 2, 2)
    assert sorted(core["user"].unique().tolist()) == [0, 1]
    # iterative: removing a user can push an item under k, which removes more users
    g = pd.DataFrame({"user": [0, 0, 1, 1, 2], "item": [0, 1, 0, 2, 2], "ts": 0, "order": 0})
    assert len(filters.k_core(g, 2, 2, iterative=True)) == 0
    assert len(filters.k_core(g, 2, 2, iterative=False)) == 3
