"""PrepRec's network and adapter (models/preprec.md §2.8–§6): parameter count, relative-time
codes, scoring paths, paper-compat switches, and zero-shot transfer beating Pop on a synthetic
target whose popularity dynamics carry the signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import EvalSchema
from recx.data.domain import DomainData
from recx.data.scenarios import leave_one_out
from recx.data.sequences import query_batch
from recx.errors import ConfigError
from recx.eval.evaluator import Evaluator
from recx.models.modules.preprec_net import PrepRecNet, relative_time_codes
from recx.models.preprec import negatives_excluding
from recx.train.loop import make_optimizer
from tests.conftest import make_model

DAY = 86400


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def lifecycle_domain(seed: int, n_items=200, n_users=300, n_events=20, span=400.0, life=30.0,
                     name="lc") -> DomainData:
    """Users choose among the items they have not consumed in proportion to each item's current
    life-cycle popularity A_i·x·e^(−x), x = (t − release_i) / life: no personal taste, so the
    signal is in the popularity dynamics. Item ids are a random permutation per domain."""
    rng = np.random.default_rng(seed)
    release = rng.uniform(-2 * life, span, n_items)
    appeal = rng.lognormal(0.0, 0.5, n_items)
    start = rng.uniform(0, span - 60, n_users)
    t = start[:, None] + np.cumsum(rng.exponential(2.0, (n_users, n_events)), 1)  # days
    x = (t[..., None] - release) / life
    rate = np.where(x > 0, appeal * x * np.exp(-x), 0.0) + 1e-6
    chosen = np.zeros((n_users, n_items), bool)
    items = np.zeros((n_users, n_events), np.int64)
    for k in range(n_events):
        w = np.where(chosen, 0.0, rate[:, k])
        cdf = (w / w.sum(1, keepdims=True)).cumsum(1)
        pick = (cdf < rng.random((n_users, 1))).sum(1).clip(max=n_items - 1)
        items[:, k] = pick
        chosen[np.arange(n_users), pick] = True
    user = np.repeat(np.arange(1, n_users + 1), n_events)
    item = rng.permutation(n_items)[items.ravel()] + 1
    ts = (1_600_000_000 + t.ravel() * DAY).astype(np.int64)
    indptr = np.zeros(n_users + 2, np.int64)
    indptr[1:] = np.cumsum(np.bincount(user, minlength=n_users + 1))
    frame = pd.DataFrame({"user": user, "item": item, "ts": ts,
                          "split": leave_one_out(indptr, ts)})
    return DomainData.from_frames(name, f"{name}-{seed}", frame, n_users, n_items)


SMALL = dict(max_len=20, features={"coarse_days": 10, "fine_days": 3})


@pytest.fixture(scope="module")
def domains():
    return lifecycle_domain(0, name="lc_a"), lifecycle_domain(1, name="lc_b")


def evaluate(model, domain, mask: bool, split="test", **ev) -> dict:
    cfg = OmegaConf.merge(OmegaConf.structured(EvalSchema), {"ks": [10], **ev})
    model.eval()
    e = Evaluator(domain, cfg, mask_history=mask, cache_root=None,
                  max_len=getattr(model, "max_len", 50))

    def fn(batch, cand):
        return model.score_all(batch) if cand is None else model.score_candidates(batch, cand)

    return e.run(fn, split).metrics(["NDCG", "Recall"], [10])["all"]


def train(model, domain, epochs, seed=0):
    opt = make_optimizer(model, model.optim)
    rng = np.random.default_rng(seed)
    users = domain.train_users()
    for _ in range(epochs):
        model.train()
        for batch in model.train_batches(domain, rng, users):
            opt.zero_grad()
            model.loss(batch).backward()
            opt.step()
    model.eval()


# ------------------------------------------------------------------------------- network
def test_parameter_count_with_the_papers_dimensions():
    assert sum(p.numel() for p in PrepRecNet().parameters()) == 44_950
    assert sum(p.numel() for p in PrepRecNet(heads=2).parameters()) == 44_950
    assert sum(p.numel() for p in PrepRecNet(learned_positions=True).parameters()) == 54_950
    m = make_model("preprec")
    assert sum(p.numel() for p in m.parameters()) == 44_950
    # domain tables are never part of a checkpoint
    assert all(k.startswith("net.") for k in m.state_dict())
    assert not any("table" in k for k in m.state_dict())


def test_relative_time_codes_by_hand():
    # window of 4 real events at times 0, 10, 15, 35 (two padding slots); the target at 36
    ts = torch.tensor([[0, 0, 0, 10, 15, 35]])
    real = torch.tensor([[False, False, True, True, True, True]])
    # gaps g = 0, 10, 5, 20
    assert relative_time_codes(ts, real, "causal_rank").tolist() == [[0, 0, 1, 2, 2, 4]]
    assert relative_time_codes(ts, real, "window_rank").tolist() == [[0, 0, 1, 3, 2, 4]]
    # the original: gaps to the next event (10, 5, 20, 1), then argsort + 1 = [4, 2, 1, 3]
    nxt = torch.tensor([[0, 0, 10, 15, 35, 36]])
    assert relative_time_codes(ts, real, "argsort", nxt).tolist() == [[0, 0, 4, 2, 1, 3]]


def test_causal_rank_ignores_later_gaps():
    ts = torch.tensor([[1, 4, 6, 20, 21]])
    real = torch.ones_like(ts, dtype=torch.bool)
    later = ts.clone()
    later[0, -1] = 100  # change the last gap only
    for mode, same in (("causal_rank", True), ("window_rank", False)):
        a = relative_time_codes(ts, real, mode)[0, :-1]
        b = relative_time_codes(later, real, mode)[0, :-1]
        assert torch.equal(a, b) == same


# ------------------------------------------------------------------------------- adapter
def test_paper_compat_shorthand_and_switches():
    assert make_model("preprec").paper_compat == {}
    m = make_model("preprec", paper_compat=True)
    assert set(m.paper_compat) == {"year_reset_periods", "argsort_time",
                                   "coarse_index_for_target_fine", "last_epoch_as_best"}
    assert m.time_mode == "argsort"
    m = make_model("preprec", paper_compat={"argsort_time": False, "last_epoch_as_best": True})
    assert m.paper_compat == {"last_epoch_as_best": True}
    with pytest.raises(ConfigError, match="argsort_tim"):
        make_model("preprec", paper_compat={"argsort_tim": True})
    with pytest.raises(ConfigError):
        make_model("preprec", relative_time="argsort")


def test_full_ranking_matches_candidate_scoring(domains):
    """Grouping users by query periods gives the same scores as embedding each candidate at its
    own user's query time."""
    d = domains[0]
    torch.manual_seed(0)
    m = make_model("preprec", **SMALL).eval()
    m.fit_inputs(d)
    q = d.queries("test")
    batch = query_batch(d, q.pos[:40], m.max_len)
    with torch.no_grad():
        full = m.score_all(batch)
        cand = torch.arange(1, d.n_items + 1).expand(40, -1)
        direct = m.score_candidates(batch, cand)
    assert len(set(zip(m.event_P[q.pos[:40]].tolist(), m.event_F[q.pos[:40]].tolist(),
                       strict=True))) > 5  # several period groups in the batch
    torch.testing.assert_close(full[:, 1:], direct, rtol=1e-5, atol=1e-5)
    # query periods from the time alone (no target event) agree with the event's own
    batch.query_pos = np.full(40, -1)
    with torch.no_grad():
        torch.testing.assert_close(m.score_all(batch), full)
    # a wider window (more all-padding columns) is trimmed away: identical scores
    wide = query_batch(d, q.pos[:40], 60)
    with torch.no_grad():
        torch.testing.assert_close(m.score_all(wide), full)


def test_adjusted_fine_scoring_is_consistent(domains):
    d = domains[0]
    torch.manual_seed(0)
    m = make_model("preprec", **SMALL, eval_fine="adjusted").eval()
    m.fit_inputs(d)
    q = d.queries("valid")
    batch = query_batch(d, q.pos[:8], m.max_len)
    with torch.no_grad():
        full = m.score_all(batch)
        direct = m.score_candidates(batch, torch.arange(1, d.n_items + 1).expand(8, -1))
        plain = make_model("preprec", **SMALL).eval()
        plain.load_state_dict(m.state_dict())
        plain.fit_inputs(d)
        period = plain.score_all(batch)
    torch.testing.assert_close(full[:, 1:], direct, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(full, period)  # the fine feature did change


def test_training_batches_and_negatives(domains):
    d = domains[0]
    m = make_model("preprec", **SMALL, optim={"batch_users": 64})
    m.fit_inputs(d)
    users = d.train_users()
    batches = m.train_batches(d, np.random.default_rng(0), users)
    assert len(batches) == len(users) // 64
    b = next(iter(batches))
    assert b["idx"].shape == (64, 21) and b["neg"].shape == (64, 20)
    idx = b["idx"].numpy()
    assert d.train_mask[idx[idx >= 0]].all()  # only training events
    rng = np.random.default_rng(0)
    u = users[:50]
    ends = d.indptr[u] + d.n_train[u]
    neg = negatives_excluding(d, rng, u, ends, (50, 30))
    for row, user in enumerate(u):
        seen = set(d.item[d.indptr[user]:ends[row]].tolist())
        assert not seen & set(neg[row].tolist())


@pytest.mark.parametrize("over", [{"optim": {"loss": "ce"}},
                                  {"paper_compat": True},
                                  {"features": {"coarse_days": 10, "fine_days": 3,
                                                "encoding": "sinusoidal"}}])
def test_loss_variants_train(domains, over):
    d = domains[0]
    torch.manual_seed(0)
    m = make_model("preprec", **{**SMALL, **over})
    m.fit_inputs(d)
    m.train()
    batch = next(iter(m.train_batches(d, np.random.default_rng(0), d.train_users())))
    loss = m.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in m.net.item_mlp.parameters())


def test_zero_shot_transfer_beats_pop(domains):
    """Trained on one life-cycle domain, scored on another with unrelated item ids, PrepRec
    beats Pop (all-time counts, history masked as `auto` does for it) on full ranking."""
    src, tgt = domains
    torch.manual_seed(0)
    m = make_model("preprec", **SMALL, optim={"batch_users": 32})
    m.fit_inputs(src)
    train(m, src, epochs=12)
    m.fit_inputs(tgt)
    ours = evaluate(m, tgt, mask=False)
    pop = make_model("pop")
    pop.fit_inputs(tgt)
    base = evaluate(pop, tgt, mask=True)
    assert ours["NDCG@10"] > 1.3 * base["NDCG@10"], (ours, base)
    assert ours["Recall@10"] > base["Recall@10"], (ours, base)
    # and the same weights still score the source (switching back rebuilds nothing)
    m.fit_inputs(src)
    assert evaluate(m, src, mask=False, split="valid")["NDCG@10"] > 0
