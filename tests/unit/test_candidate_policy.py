"""The candidate policy (EVALUATION §3): one candidate set per target domain, the same for every
model, never chosen from the target; both rules counted from one scoring pass."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import EvalSchema
from recx.data.domain import domain_from_frame
from recx.eval import metrics as M
from recx.eval.evaluator import Evaluator
from recx.eval.interpolation import Blend
from tests.conftest import timeline_frame

# Repeats kept. Items a..e → ids 1..5; every user's test target is its last event.
#   u1: a b | c | a      the test target a is a history item (a revisit)
#   u2: b c | d | e
#   u3: a d | b | c
REPEATS = {
    "u1": [("a", 1), ("b", 2), ("c", 3), ("a", 4)],
    "u2": [("b", 1), ("c", 2), ("d", 3), ("e", 4)],
    "u3": [("a", 1), ("d", 2), ("b", 3), ("c", 4)],
}
#                      pad   a    b    c    d    e
SCORES = torch.tensor([0.0, 0.2, 0.9, 0.5, 0.7, 0.1])


def scorer(batch, cand):
    s = SCORES.expand(len(batch), -1)
    return s if cand is None else s.gather(1, cand)


def ev(**kw):
    return OmegaConf.merge(OmegaConf.structured(EvalSchema), {"ks": [1, 3, 5], **kw})


def test_repeat_data_rank_every_item_for_every_model(tmp_path):
    d = domain_from_frame(timeline_frame(REPEATS), dedup="all")
    assert not d.repeat_free and d.repeats["test_targets"] == 1
    res = Evaluator(d, ev(), cache_root=tmp_path).run(scorer, "test")
    # the policy masks nothing: u1's a (0.2) is below b, d, c; u2's e below all four others;
    # u3's c below b and d. Masking the history with the target exempt would have given
    # [1, 1, 0] (u1: b and c masked, a kept, only d above it): the answer choosing the candidates
    assert res.mask is False and res.policy
    assert res.ranks[0].tolist() == [3, 4, 2]
    assert res.n_candidates.tolist() == [5, 5, 5]
    # the other rule, from the same scores: u1's target is a history item, so a miss
    other = res.other
    assert other.mask is True and not other.policy
    assert other.ranks[0].tolist() == [M.MISS, 1, 0]
    assert other.n_candidates.tolist() == [5 - 3, 5 - 3, 5 - 3]


def test_deduplicated_data_mask_the_history_for_every_model(tmp_path):
    d = domain_from_frame(timeline_frame({k: [*v[:3], ("e", 9)] if k == "u1" else v
                                          for k, v in REPEATS.items()}))
    assert d.repeat_free
    res = Evaluator(d, ev(), cache_root=tmp_path).run(scorer, "test")
    assert res.mask is True and res.policy
    # u1: a b c masked → e (0.1) below d only; u2: b c d masked → e below a; u3 as above
    assert res.ranks[0].tolist() == [1, 1, 0]
    assert res.other.ranks[0].tolist() == [4, 4, 2] and res.other.mask is False


def test_explicit_rule_overrides_the_policy_for_all(tmp_path):
    d = domain_from_frame(timeline_frame(REPEATS), dedup="all")
    res = Evaluator(d, ev(mask_history="true"), cache_root=tmp_path).run(scorer, "test")
    assert res.mask is True and res.policy and res.ranks[0].tolist() == [M.MISS, 1, 0]
    only = Evaluator(d, ev(mask_variants="policy"), cache_root=tmp_path).run(scorer, "test")
    assert only.other is None


@pytest.mark.parametrize("ties", ["pessimistic", "optimistic", "random"])
def test_both_rules_from_one_pass_equal_two_evaluations(tmp_path, ties):
    rng = np.random.default_rng(0)
    events = {f"u{u}": [(f"i{rng.integers(25)}", t) for t in range(9)] for u in range(60)}
    d = domain_from_frame(timeline_frame(events), dedup="all")
    assert d.repeats["test_targets"] > 0
    # coarse scores: many ties between history items and targets
    table = torch.from_numpy(rng.integers(0, 4, (d.n_users + 1, d.n_items + 1))
                             .astype(np.float32))

    def by_user(batch, cand):
        s = table[batch.users]
        return s if cand is None else s.gather(1, cand)

    both = Evaluator(d, ev(ties=ties, batch_users=7), cache_root=tmp_path).run(by_user, "test")
    for res in both.candidate_sets():
        alone = Evaluator(d, ev(ties=ties, mask_variants="policy"), cache_root=tmp_path,
                          mask_history=res.mask).run(by_user, "test")
        assert res.ranks.tolist() == alone.ranks.tolist()
        assert res.n_candidates.tolist() == alone.n_candidates.tolist()


@pytest.mark.parametrize("dedup,norm", [("all", "zscore"), ("earliest", "zscore"),
                                        ("all", "minmax"), ("earliest", "minmax")])
def test_a_blend_is_normalised_over_the_policy_candidates_and_ranked_under_both(tmp_path,
                                                                                dedup, norm):
    """An interpolation normalises each model over the policy's candidates; the other rule
    ranks that same blend over its own candidates (the history items enter or leave), so it is
    counted from the policy's pass. Reference: the blend computed by hand, ranked as a plain
    scorer under each rule."""
    rng = np.random.default_rng(1)
    events = {f"u{u}": [(f"i{rng.integers(20)}", t) for t in range(8)] for u in range(30)}
    d = domain_from_frame(timeline_frame(events), dedup=dedup)
    a = torch.from_numpy(rng.random((d.n_users + 1, d.n_items + 1)))
    b = torch.from_numpy(rng.random((d.n_users + 1, d.n_items + 1)))
    two = lambda batch, cand: torch.stack([a[batch.users], b[batch.users]])  # noqa: E731
    alphas = [0.0, 0.25, 1.0]  # exact in float32, as the blend computes α
    both = Evaluator(d, ev(), cache_root=tmp_path).run(two, "test", variants=2,
                                                       count=Blend(alphas, norm))
    q = d.queries("test")
    policy = np.zeros((len(q.users), d.n_items + 1), dtype=bool)  # the policy's masked items
    policy[:, 0] = True
    if both.mask:
        r, i = d.user_items(q.users, upto_pos=q.pos)
        policy[r, i] = True
    row = {int(u): k for k, u in enumerate(q.users)}

    def z(x, keep):  # the normalisation over the kept entries, applied to every item
        if norm == "minmax":
            return (x - x[keep].min()) / (x[keep].max() - x[keep].min())
        mean = x[keep].mean()
        return (x - mean) / np.sqrt(((x[keep] - mean) ** 2).mean())

    for k, alpha in enumerate(alphas):
        def blended(batch, cand, alpha=alpha):
            out = torch.full((len(batch), d.n_items + 1), -np.inf, dtype=torch.float64)
            for j, u in enumerate(batch.users.tolist()):
                keep = ~policy[row[u]]
                out[j, 1:] = torch.from_numpy(alpha * z(a[u].numpy(), keep)
                                              + (1 - alpha) * z(b[u].numpy(), keep))[1:]
            return out

        for res in both.candidate_sets():
            plain = Evaluator(d, ev(mask_variants="policy"), cache_root=tmp_path,
                              mask_history=res.mask).run(blended, "test")
            assert res.ranks[k].tolist() == plain.ranks[0].tolist()


def test_a_rank_normalised_blend_counts_each_rule_on_its_own(tmp_path):
    rng = np.random.default_rng(2)
    events = {f"u{u}": [(f"i{rng.integers(20)}", t) for t in range(8)] for u in range(30)}
    d = domain_from_frame(timeline_frame(events), dedup="all")
    a = torch.from_numpy(rng.random((d.n_users + 1, d.n_items + 1)).astype(np.float32))
    b = torch.from_numpy(rng.random((d.n_users + 1, d.n_items + 1)).astype(np.float32))
    two = lambda batch, cand: torch.stack([a[batch.users], b[batch.users]])  # noqa: E731
    blend = Blend([0.0, 0.5, 1.0], "rank")
    both = Evaluator(d, ev(), cache_root=tmp_path).run(two, "test", count=blend,
                                                       variants=2)
    for res in both.candidate_sets():
        alone = Evaluator(d, ev(mask_variants="policy"), cache_root=tmp_path,
                          mask_history=res.mask).run(two, "test", count=blend, variants=2)
        assert res.ranks.tolist() == alone.ranks.tolist()


def test_dedup_warns_when_it_drops_many_rows(caplog):
    events = {f"u{u}": [(f"i{k % 4}", k) for k in range(8)] for u in range(5)}  # 50 % repeats
    with caplog.at_level(logging.WARNING):
        d = domain_from_frame(timeline_frame(events), dedup="earliest")
    assert "dropped 20 of 40 rows (50.0 %)" in caplog.text and "filters.dedup=all" in caplog.text
    assert d.repeat_free and d.stats["candidate_policy"] == "mask=on"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        kept = domain_from_frame(timeline_frame(events), dedup="all")
    assert "dropped" not in caplog.text
    assert kept.stats["candidate_policy"] == "mask=off"
    assert kept.stats["repeats"]["events"] == 20 and kept.stats["repeats"]["test_targets"] == 5
