"""Metrics and ranking on a hand-worked 3-user example (EVALUATION §4, §5, §9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import EvalSchema
from recx.data.domain import domain_from_frame
from recx.eval import metrics as M
from recx.eval.evaluator import Evaluator
from tests.conftest import timeline_frame

# u1: a b | c | d     u2: b | c | e     u3: a e | d | b      (train | valid | test)
EVENTS = {
    "u1": [("a", 1), ("b", 2), ("c", 3), ("d", 4)],
    "u2": [("b", 1), ("c", 2), ("e", 3)],
    "u3": [("a", 1), ("e", 2), ("d", 3), ("b", 4)],
}
# items a..e → ids 1..5; one score per item for every user; d and e tie
SCORES = torch.tensor([0.0, 0.5, 0.9, 0.1, 0.7, 0.7])


@pytest.fixture
def domain():
    return domain_from_frame(timeline_frame(EVENTS), "three")


def scorer(batch, cand):
    s = SCORES.expand(len(batch), -1)
    return s if cand is None else s.gather(1, cand)


def ev(**kw):
    return OmegaConf.merge(OmegaConf.structured(EvalSchema), {"ks": [1, 2, 3], **kw})


def evaluate(domain, tmp_path, mask=False, **kw):
    e = Evaluator(domain, ev(**kw), mask_history=mask, cache_root=tmp_path)
    res = e.run(scorer, "test")
    return res.ranks[0], res.metrics(["Recall", "NDCG", "MRR"], [1, 2, 3])["all"]


def test_metric_formulas_on_rank_vectors():
    ranks = np.array([0, 2, 9, 10])
    assert M.per_user(ranks, "Recall", 10).tolist() == [1, 1, 1, 0]  # r = K-1 counts, r = K not
    assert M.per_user(ranks, "NDCG", 10)[1] == pytest.approx(0.5)  # 1 / log2(4)
    assert M.per_user(ranks, "MRR", 10).tolist() == pytest.approx([1, 1 / 3, 0.1, 0])
    assert M.per_user(np.array([0, 3]), "AUC", n_candidates=np.array([4, 4])).tolist() == [1, 0]


def test_full_ranking_pessimistic(domain, tmp_path):
    ranks, m = evaluate(domain, tmp_path)
    assert ranks.tolist() == [2, 2, 0]  # d ties e and goes after it; b is first
    assert m["Recall@1"] == pytest.approx(1 / 3)
    assert m["Recall@3"] == pytest.approx(1.0)
    assert m["NDCG@3"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert m["MRR@3"] == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)
    assert m["n_users"] == 3


def test_full_ranking_optimistic_and_masked(domain, tmp_path):
    ranks, _ = evaluate(domain, tmp_path, ties="optimistic")
    assert ranks.tolist() == [1, 1, 0]
    # masking the visible history (train + valid for test queries): u1 loses a,b,c ...
    ranks, m = evaluate(domain, tmp_path, mask=True)
    assert ranks.tolist() == [1, 1, 0]
    assert m["NDCG@2"] == pytest.approx((2 / math.log2(3) + 1) / 3)


def test_forced_mask_makes_a_history_target_a_miss(tmp_path, caplog):
    d = domain_from_frame(timeline_frame({"u": [("a", 1), ("b", 2), ("c", 3), ("a", 4)]}),
                          dedup="all")
    e = Evaluator(d, ev(), mask_history=True, cache_root=tmp_path)
    res = e.run(lambda b, c: torch.tensor([[0.0, 1.0, 0.5, 0.2]]), "test")
    assert res.ranks[0].tolist() == [M.MISS] and res.n_repeat_targets == 1
    assert res.metrics(["Recall", "NDCG"], [10])["all"]["Recall@10"] == 0.0
    assert "1 of 1 targets (100.0 %) are history items" in caplog.text


def test_sampled_protocol_uses_never_seen_items(domain, tmp_path):
    # fewer than 100 eligible negatives: all of them are used (u1: e; u2: a, d; u3: c)
    ranks, m = evaluate(domain, tmp_path, candidates="sampled", n_negatives=100)
    assert ranks.tolist() == [1, 1, 0]
    assert m["Recall@1"] == pytest.approx(1 / 3)
    assert m["NDCG@2"] == pytest.approx((2 / math.log2(3) + 1) / 3)


def test_random_ties_are_uniform_and_seeded(tmp_path):
    d = domain_from_frame(timeline_frame({f"u{k}": [("a", 1), ("b", 2), ("c", 3)]
                                          for k in range(400)}), k_core=0)
    flat = lambda b, c: torch.zeros(len(b), 4)  # noqa: E731 — a constant scorer
    e = Evaluator(d, ev(ties="random"), mask_history=False, cache_root=tmp_path)
    r1 = e.run(flat, "test").ranks[0]
    assert r1.tolist() == e.run(flat, "test").ranks[0].tolist()  # seeded
    counts = np.bincount(r1, minlength=3)  # 3 tied items → ranks 0, 1, 2 equally likely
    assert counts.min() > 100
    pess = Evaluator(d, ev(), mask_history=False, cache_root=tmp_path).run(flat, "test")
    assert set(pess.ranks[0].tolist()) == {2}  # a constant scorer gets the worst rank


def test_batch_size_does_not_change_metrics(tmp_path):
    rng = np.random.default_rng(0)
    events = {f"u{u}": [(f"i{rng.integers(30)}", t) for t in range(8)] for u in range(40)}
    d = domain_from_frame(timeline_frame(events), dedup="all")
    table = torch.from_numpy(rng.random((d.n_users + 1, d.n_items + 1)).astype(np.float32))

    def by_user(batch, cand):
        s = table[batch.users]
        return s if cand is None else s.gather(1, cand)

    out = []
    for bs in (1, 7, 1024):
        e = Evaluator(d, ev(batch_users=bs), mask_history=True, cache_root=tmp_path)
        out.append(e.run(by_user, "test").ranks[0].tolist())
    assert out[0] == out[1] == out[2]


def test_nan_scores_raise(domain, tmp_path):
    from recx.errors import EvalError

    e = Evaluator(domain, ev(), mask_history=False, cache_root=tmp_path, label="broken")
    with pytest.raises(EvalError, match="broken produced NaN"):
        e.run(lambda b, c: torch.full((len(b), 6), float("nan")), "test")
