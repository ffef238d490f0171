"""statmlp's adapter and network (recx/models/statmlp.py): full ranking equals pair scoring (both
architectures, cached and chunked paths), BPR triples, the popularity-only ablation without
Node2Vec, domain-free checkpoints, config errors, training on `tiny` and transfer to `tiny_b`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recx.data.sequences import query_batch
from recx.errors import ConfigError
from recx.models.statmlp import StatMLP
from tests.conftest import compose, make_model
from tests.unit.test_statmlp_features import SMALL, domain_of, random_frame

FEATURES = {**SMALL}


def model(**kw) -> StatMLP:
    torch.manual_seed(0)
    return make_model("statmlp", features={**FEATURES, **kw.pop("features", {})}, **kw)


@pytest.fixture(scope="module")
def toy():
    return domain_of(random_frame(), 40, 25)


def all_pairs(m, d) -> torch.Tensor:
    """Reference: every (user, item) pair as an aligned list through `pair_scores`."""
    uu, ii = torch.meshgrid(torch.arange(1, d.n_users + 1), torch.arange(d.n_items + 1),
                            indexing="ij")
    return m.pair_scores(uu.reshape(-1), ii.reshape(-1)).view(uu.shape)


def batch_of(d, users):
    q = d.queries("test")
    pos = np.array([q.pos[q.users == u][0] for u in users])
    return query_batch(d, pos, 1)


@pytest.mark.parametrize("architecture", ["pair_mlp", "two_tower"])
@pytest.mark.parametrize("cache_pairs,edge_pairs,key_pairs,table", [
    (10 ** 9, 0, 1 << 24, 1 << 26),  # per-domain grid
    (0, 10 ** 9, 1 << 24, 1 << 26),  # item chunks in one group, edge rows kept, score table
    (0, 0, 40 * 14, 1 << 26),  # groups of two 7-item chunks (the last one short), assigned each
    (0, 0, 40 * 14, 0),  # time; the same without the score table (each group's own unique)
])
def test_full_ranking_equals_pair_scores(toy, architecture, cache_pairs, edge_pairs, key_pairs,
                                         table, monkeypatch):
    import recx.models.statmlp as statmlp

    monkeypatch.setattr(statmlp, "_KEY_PAIRS", key_pairs)
    monkeypatch.setattr(statmlp, "_TABLE_FLOATS", table)
    m = model(architecture=architecture, score_cache_pairs=cache_pairs,
              edge_cache_pairs=edge_pairs, score_chunk_items=7, tie_break="none")
    m.fit_inputs(toy)
    m.eval()
    users = list(range(1, toy.n_users + 1))
    with torch.no_grad():
        full = m.score_all(batch_of(toy, users))
        ref = all_pairs(m, toy)
        cand = torch.tensor([[3, 1, 25, 7]] * len(users))
        sampled = m.score_candidates(batch_of(toy, users), cand)
    assert full.shape == (toy.n_users, toy.n_items + 1)
    torch.testing.assert_close(full[:, 1:], ref[:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sampled, ref[:, [3, 1, 25, 7]], rtol=1e-5, atol=1e-5)
    assert full[:, 1:].std() > 0
    with torch.no_grad():  # new weights: no score of the old ones may survive in a cache
        for prm in m.net.parameters():
            prm.mul_(1.5)
        again = m.score_all(batch_of(toy, users))
        torch.testing.assert_close(again[:, 1:], all_pairs(m, toy)[:, 1:], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(again[:, 1:], full[:, 1:])


def test_ties_are_broken_by_item_degree_and_nothing_else_moves(toy):
    raw, tied = model(tie_break="none"), model(tie_break="item_degree")
    users = list(range(1, toy.n_users + 1))
    cand = torch.tensor([[3, 1, 25, 7]] * len(users))
    for m in (raw, tied):
        m.fit_inputs(toy)
        m.eval()
    with torch.no_grad():
        s32 = raw.score_all(batch_of(toy, users))[:, 1:]
        s64 = tied.score_all(batch_of(toy, users))[:, 1:]
        sampled = tied.score_candidates(batch_of(toy, users), cand)
    assert s64.dtype == torch.float64 and torch.equal(s64.float(), s32)  # same float32 values
    degree = torch.bincount(torch.from_numpy(tied.entry["edge_i"]), minlength=toy.n_items + 1)
    deg = degree[1:].double()
    n_ties = 0
    for u in range(len(users)):
        a, b = s32[u][:, None], s32[u][None, :]
        before = (a > b) | ((a == b) & (deg[:, None] > deg[None, :]))  # the lexicographic order
        assert torch.equal(s64[u][:, None] > s64[u][None, :], before)
        n_ties += int(((a == b) & (deg[:, None] != deg[None, :])).sum())
    assert n_ties > 0  # the toy has equal scores of items with different degrees
    torch.testing.assert_close(sampled, s64[:, [2, 0, 24, 6]])
    with pytest.raises(ConfigError, match="tie_break"):
        model(tie_break="random")


@pytest.mark.parametrize("n", [0, 3, 10_000])  # none, under one slice, slices and a remainder
def test_combo_scores_in_place_slices_equal_the_plain_sums(n):
    from recx.models.modules.statmlp_net import StatMLPNet

    torch.manual_seed(0)
    net = StatMLPNet([10, 11], [10, 11], [11, 11], hidden=[32, 16, 8]).eval()
    parts = [net.part(s, torch.randint(0, 10, (k, 2))) for s, k in
             (("user", 30), ("item", 40), ("edge", 20))]
    rows = [torch.randint(0, len(p), (n,)) for p in parts]
    plain = net.head_scores(parts[0][rows[0]] + parts[1][rows[1]] + parts[2][rows[2]])
    with torch.no_grad():  # the in-place path
        fast = net.combo_scores(parts, rows)
    slow = net.combo_scores(parts, rows)  # gradient enabled: the plain path, differentiable
    assert fast.shape == slow.shape == (n,)
    torch.testing.assert_close(fast, plain.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(slow.detach(), plain.detach(), rtol=0, atol=0)
    assert n == 0 or slow.requires_grad


def test_edge_clusters_are_assigned_in_float32_under_bf16_autocast(toy):
    """GPU training runs the BPR loss under bf16 autocast; the negatives' nearest edge centroid
    must still be the float32 one (bf16 flips near-ties: checked to happen on these pairs)."""
    from recx.data.features.graphstats import assign_pairs

    m = model()
    m.fit_inputs(toy)
    e = m.entry
    users = torch.arange(1, toy.n_users + 1).repeat_interleave(toy.n_items)
    items = torch.arange(1, toy.n_items + 1).repeat(toy.n_users)
    want = m._pair_edge_codes(users, items)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m._pair_edge_codes(users, items)
        grid = m._edge_grid(torch.arange(1, toy.n_users + 1), torch.arange(1, toy.n_items + 1))
        raw = assign_pairs(e["user_emb"][users], e["item_emb"][items], e["centroids"],
                           m.stats_cfg.edge.op)
    ok = e["user_has"][users] & e["item_has"][items]
    assert (raw[ok] != want[ok]).any()  # bf16 alone would move some pairs
    assert torch.equal(got, want) and torch.equal(grid.reshape(-1), want)


def test_edge_cache_assigns_each_user_once_and_changes_no_score(toy, monkeypatch):
    """Chunked path (no per-domain grid): the cached edge clusters give the same scores, and a
    second ranking of the same users assigns nothing."""
    import recx.models.statmlp as statmlp

    calls = []
    original = statmlp.assign_grid
    monkeypatch.setattr(statmlp, "assign_grid", lambda u, *a: calls.append(len(u))
                        or original(u, *a))
    fresh = model(score_cache_pairs=0, edge_cache_pairs=0, score_chunk_items=7)
    cached = model(score_cache_pairs=0, score_chunk_items=7)
    first, second = list(range(1, 21)), list(range(11, toy.n_users + 1))
    with torch.no_grad():
        for m in (fresh, cached):
            m.fit_inputs(toy)
            m.eval()
        ref = [fresh.score_all(batch_of(toy, u)) for u in (first, second)]
        calls.clear()
        got = [cached.score_all(batch_of(toy, first))]
        assert sum(calls) == len(first) * 4  # 20 users × ceil(26 items / 7) chunks
        calls.clear()
        got.append(cached.score_all(batch_of(toy, second)))
        assert sum(calls) == (toy.n_users - 20) * 4  # only users 21… are new
        calls.clear()
        torch.testing.assert_close(cached.score_all(batch_of(toy, first)), ref[0])
        assert not calls
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b)


def test_edge_grid_is_cached_for_later_jobs(toy, tmp_path, monkeypatch):
    """Once every user's edge clusters are known they go to the feature cache: a later job on
    the same features (a fresh model, as in another process) assigns nothing and scores the same;
    other features (another seed) are a miss."""
    import recx.models.statmlp as statmlp
    from recx.data.features import FeatureEnv

    calls = []
    original = statmlp.assign_grid
    monkeypatch.setattr(statmlp, "assign_grid", lambda u, *a: calls.append(len(u))
                        or original(u, *a))
    everyone = list(range(1, toy.n_users + 1))

    def rank(seed, users):
        toy.env = FeatureEnv(cache_root=tmp_path, seed=seed, deterministic=True)
        m = model(score_cache_pairs=0, score_chunk_items=7)
        m.fit_inputs(toy)
        m.eval()
        with torch.no_grad():
            return m.score_all(batch_of(toy, users))

    try:
        rank(0, everyone[:20])  # part of the users: nothing is cached yet
        assert not list(tmp_path.glob("features/toy/statmlp-edges-*"))
        calls.clear()
        first = rank(0, everyone)
        assert sum(calls) == toy.n_users * 4  # every user assigned (fresh model)
        (entry,) = tmp_path.glob("features/toy/statmlp-edges-*")
        assert (entry / "_SUCCESS").exists()
        assert np.load(entry / "edges.npy").shape == (toy.n_users + 1, toy.n_items + 1)
        calls.clear()
        again = rank(0, everyone)
        assert not calls  # read from the cache
        torch.testing.assert_close(again, first)
        rank(1, everyone)  # another seed: other Node2Vec vectors, other clusters
        assert calls
        assert len(list(tmp_path.glob("features/toy/statmlp-edges-*"))) == 2
    finally:
        toy.env = None


def test_edge_fields_see_the_pair(toy):
    """With edge fields, a user's scores are not a function of the item's fields alone."""
    m = model()
    m.fit_inputs(toy)
    e = m.entry
    rows = m._edge_grid(torch.arange(1, toy.n_users + 1), torch.arange(1, toy.n_items + 1))
    assert rows.unique().numel() > 3  # pairs fall into several edge clusters
    has = e["user_has"][1:, None] & e["item_has"][None, 1:]
    assert (rows[~has] == e["edge_codes"].shape[0] - 1).all()  # no vector → the "none" row


def test_bpr_triples(toy):
    m = model()
    m.fit_inputs(toy)
    rng = np.random.default_rng(0)
    users = toy.train_users()
    batches = m.train_batches(toy, rng, users)
    seen = set(zip(m.entry["edge_u"].tolist(), m.entry["edge_i"].tolist(), strict=True))
    pos, neg = [], []
    for b in batches:
        pos += list(zip(b["user"].tolist(), b["pos"].tolist(), strict=True))
        neg += list(zip(b["user"].tolist(), b["neg"].tolist(), strict=True))
        assert torch.equal(b["pos_edge"], torch.from_numpy(
            m.entry["edge_label"][np.searchsorted(
                m.entry["edge_u"] * 26 + m.entry["edge_i"],
                b["user"].numpy() * 26 + b["pos"].numpy())]))
    kept = {(u, i) for u, i in seen if u in set(users.tolist())}
    assert sorted(pos) == sorted(kept)  # every training edge of the users exactly once
    assert len(batches) == -(-len(kept) // 2048)
    assert not set(neg) & seen  # negatives are never training items of the user
    loss = m.loss(next(iter(batches)))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_popularity_only_ablation_skips_node2vec(toy, monkeypatch):
    import recx.models.statmlp as mod

    def boom(*a, **k):
        raise AssertionError("Node2Vec must not run for activity-only fields")

    monkeypatch.setattr(mod, "graph_stats", boom)
    m = model(features={"fields": ["act_u", "act_i"]}, architecture="two_tower")
    m.fit_inputs(toy)
    m.eval()
    with torch.no_grad():
        s = m.score_all(batch_of(toy, [1, 2, 3]))
    # the score of an item depends only on the (user bin, item bin) pair
    ib = m.entry["item_codes"][:, 0]
    for b in ib.unique().tolist():
        cols = (ib == b).nonzero().view(-1)
        cols = cols[cols > 0]
        assert torch.allclose(s[:, cols], s[:, cols[:1]].expand(-1, len(cols)))


def test_figures_are_data_the_stage_draws(toy, tmp_path, monkeypatch):
    """The model hands over what to draw; drawing is `recx.plots.draw`'s (the transfer stage's)."""
    import recx.models.statmlp as mod
    from recx.plots import draw

    domains, roles = {"toy": toy}, {"toy": "target"}
    monkeypatch.setattr(mod, "graph_stats", lambda *a: pytest.fail("no graph for act fields"))
    only = model(features={"fields": ["act_u", "act_i"]}, architecture="two_tower")
    [fig] = only.figures(domains, roles)
    assert (fig.name, fig.plot) == ("activity", "activity_distributions")
    assert fig.data == {"domains": domains, "roles": roles, "n_bins": only.stats_cfg.activity_bins}
    monkeypatch.undo()
    figs = model().figures(domains, roles)
    assert [f.name for f in figs] == ["activity", "clusters"]
    assert set(figs[1].data["stats"]) == {"toy"}
    assert draw(figs, tmp_path / "f") == ["f_activity.png", "f_clusters.png"]
    assert (tmp_path / "f_clusters.csv").exists() and (tmp_path / "f_activity.pdf").exists()


def test_checkpoint_holds_no_domain_state(toy):
    m = model()
    m.fit_inputs(toy)
    keys = set(m.state_dict())
    assert keys and all(k.startswith("net.") for k in keys)
    other = domain_of(random_frame(seed=2, n_users=30, n_items=18), 30, 18, name="other")
    m2 = model()
    m2.fit_inputs(other)
    m2.load_state_dict(m.state_dict(), strict=True)  # same weights fit any domain


def test_config_errors():
    with pytest.raises(ConfigError, match="fields"):
        make_model("statmlp", features={"fields": ["act_u", "degree"]})
    with pytest.raises(ConfigError, match="two_tower needs"):
        make_model("statmlp", architecture="two_tower", features={"fields": ["act_i", "size_e"]})
    with pytest.raises(ConfigError, match="bpr"):
        make_model("statmlp", optim={"loss": "ce"})
    with pytest.raises(ConfigError, match="architecture"):
        make_model("statmlp", architecture="three_tower")
    with pytest.raises(ConfigError, match="sampling"):
        make_model("statmlp", multi_source={"sampling": "random"})


def test_train_on_tiny_transfer_to_tiny_b(tmp_path):
    from recx.data.domain import load_domain
    from recx.data.features import FeatureEnv

    cfg = compose("transfer", ["model=statmlp", "source=tiny", "target=tiny_b"], root=tmp_path)
    env = FeatureEnv(cache_root=tmp_path / "cache", seed=0, deterministic=True)
    tiny, tiny_b = (load_domain(ds, cfg.eval, cfg.paths) for ds in (cfg.source.tiny, cfg.target))
    tiny.env = tiny_b.env = env
    m = model(features={"node2vec": {**SMALL["node2vec"], "walks_per_node": 10}},
              optim={"batch_size": 128})
    m.fit_inputs(tiny)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(3):
        m.train()
        total = []
        for b in m.train_batches(tiny, rng, tiny.train_users()):
            opt.zero_grad()
            loss = m.loss(b)
            loss.backward()
            opt.step()
            total.append(float(loss.detach()))
        losses.append(np.mean(total))
    assert losses[-1] < losses[0] - 0.05  # BPR learns on the source
    m.eval()
    weights = {k: v.clone() for k, v in m.state_dict().items()}
    m.fit_inputs(tiny_b)  # zero-shot: recompute the statistics on the target, keep the weights
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in weights.items())
    q = tiny_b.queries("test")
    with torch.no_grad():
        s = m.score_all(query_batch(tiny_b, q.pos, 1))
    assert s.shape == (len(q.pos), tiny_b.n_items + 1)
    assert torch.isfinite(s[:, 1:]).all() and s[:, 1:].std() > 0
