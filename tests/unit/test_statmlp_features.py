"""statmlp's graph statistics (recx/data/features/graphstats.py): percentile bins on a hand-worked
degree sequence, cluster and edge-cluster size/density on toy graphs, nearest-centroid
assignment, training-graph-only features, invariance to renumbering ids, caching."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recx.data.domain import DomainData
from recx.data.features import FeatureEnv
from recx.data.features.graphstats import (
    EDGE_OPS,
    GraphStatsConfig,
    activity_bins,
    assign_grid,
    assign_pairs,
    auto_k,
    build_graph_stats,
    canonical_ranks,
    cluster_size_density,
    edge_size_density,
    graph_stats,
    percentile_bins,
    training_edges,
    wl_colours,
)
from recx.data.features.node2vec import bipartite_graph
from recx.data.scenarios import TEST, TRAIN, leave_one_out
from recx.errors import ConfigError

SMALL = {"node2vec": {"dim": 16, "walks_per_node": 5, "walk_length": 20, "window": 5,
                      "negative": 3}, "cluster": {"n_init": 2}, "edge": {"n_init": 1}}


def domain_of(frame: pd.DataFrame, n_users: int, n_items: int, name="toy") -> DomainData:
    """(user, item, ts) with ids as given → a leave-one-out domain (no re-indexing)."""
    frame = frame.sort_values(["user", "ts"], kind="stable").reset_index(drop=True)
    indptr = np.zeros(n_users + 2, np.int64)
    indptr[1:] = np.cumsum(np.bincount(frame["user"], minlength=n_users + 1))
    frame["split"] = leave_one_out(indptr, frame["ts"].to_numpy())
    h = str(pd.util.hash_pandas_object(frame, index=False).sum())
    return DomainData.from_frames(name, h, frame, n_users, n_items)


def random_frame(seed=0, n_users=40, n_items=25) -> pd.DataFrame:
    """Users with 4..14 distinct items drawn with Zipf-like popularity (varied degrees)."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    rows = []
    for u in range(1, n_users + 1):
        k = int(rng.integers(4, 15))
        items = rng.choice(n_items, size=k, replace=False, p=pop / pop.sum()) + 1
        rows += [(u, int(i), 1000 * u + t) for t, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


# ----------------------------------------------------------------------------------- bins
def test_percentile_bins_hand_worked():
    d = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    # sorted 1 1 2 3 3 4 5 5 6 9 → avg ranks: 1→1.5, 2→3, 3→4.5, 4→6, 5→7.5, 6→9, 9→10
    # perc = 10·avgrank: 45 15 60 15 75 100 30 90 75 45 → floor(perc / 10), 100 → 9
    assert percentile_bins(d, 10).tolist() == [4, 1, 6, 1, 7, 9, 3, 9, 7, 4]
    # 5 bins: floor(perc / 20)
    assert percentile_bins(d, 5).tolist() == [2, 0, 3, 0, 3, 4, 1, 4, 3, 2]
    # midrank: floor(10 · (avgrank − ½) / 10) = floor(avgrank − ½)
    assert percentile_bins(d, 10, "midrank").tolist() == [4, 1, 5, 1, 7, 9, 2, 8, 7, 4]
    assert percentile_bins(np.array([7, 7, 7]), 10).tolist() == [6, 6, 6]  # 100·2/3
    assert percentile_bins(np.zeros(0), 10).tolist() == []


def test_auto_k():
    assert auto_k("auto", 50) == 10  # √25 = 5 → clamped to 10
    assert auto_k("auto", 2 * 37 ** 2) == 37
    assert auto_k("auto", 10 ** 6) == 100
    assert auto_k("auto", 4) == 4  # never more clusters than points
    assert auto_k(7, 100) == 7


def test_activity_uses_training_edges_only():
    # user 1: items 1, 2, 3, 4 (4 is valid... 3 is valid, 4 is test); user 2: 1, 2, 5, 1
    frame = pd.DataFrame([(1, 1, 1), (1, 2, 2), (1, 3, 3), (1, 4, 4),
                          (2, 1, 1), (2, 2, 2), (2, 5, 3), (2, 1, 4)],
                         columns=["user", "item", "ts"])
    d = domain_of(frame, 2, 5)
    eu, ei = training_edges(d)
    assert list(zip(eu.tolist(), ei.tolist(), strict=True)) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    ub, ib = activity_bins(d, GraphStatsConfig())
    # item degrees 2, 2, 0, 0, 0: avg ranks 4.5, 4.5, 2, 2, 2 → perc 90, 90, 40, 40, 40
    assert ib.tolist() == [0, 9, 9, 4, 4, 4]
    assert ub.tolist() == [0, 7, 7]  # equal degrees: avg rank 1.5 of 2 → 75


# ------------------------------------------------------------------------- size, density
EU = np.array([1, 1, 2, 3, 3, 4, 4])
EI = np.array([1, 2, 1, 2, 3, 3, 4])


def test_node_cluster_size_and_density_joint():
    user_cl = np.array([-1, 0, 0, 0, 1])  # users 1, 2, 3 | 4
    item_cl = np.array([-1, 0, 0, 1, 1])  # items 1, 2 | 3, 4
    size, dens = cluster_size_density(user_cl, item_cl, EU, EI, 2, "joint")
    # C0: 3 users + 2 items, edges inside (1,1) (1,2) (2,1) (3,2) → 4 / (3·2)
    # C1: 1 user + 2 items, edges inside (4,3) (4,4) → 2 / (1·2); (3,3) crosses clusters
    assert size.tolist() == [5, 3]
    assert dens == pytest.approx([4 / 6, 1.0])


def test_node_cluster_size_and_density_separate():
    user_cl = np.array([-1, 0, 0, 0, 1])
    item_cl = np.array([-1, 2, 2, 3, 3])  # item clusters come after the 2 user clusters
    size, dens = cluster_size_density(user_cl, item_cl, EU, EI, 4, "separate")
    # incident edges / (|C| · active nodes of the other side = 4)
    assert size.tolist() == [3, 1, 2, 2]
    assert dens == pytest.approx([5 / 12, 2 / 4, 4 / 8, 3 / 8])


def test_empty_cluster_side_has_zero_density():
    size, dens = cluster_size_density(np.array([-1, 0, 0]), np.array([-1, 1, 1]),
                                      np.array([1, 2]), np.array([1, 2]), 2, "joint")
    assert size.tolist() == [2, 2] and dens.tolist() == [0.0, 0.0]


def test_edge_cluster_size_and_density():
    labels = np.array([0, 0, 0, 1, 1, 1, 2])
    size, dens = edge_size_density(labels, EU, EI, 4)
    # C0: (1,1) (1,2) (2,1): 3 / (2 users · 2 items); C1: (3,2) (3,3) (4,3): 3 / (2 · 2);
    # C2: (4,4): 1 / 1; C3: empty
    assert size.tolist() == [3, 3, 1, 0]
    assert dens == pytest.approx([0.75, 0.75, 1.0, 0.0])


@pytest.mark.parametrize("op", EDGE_OPS)
@pytest.mark.parametrize("block_pairs", [1 << 17, 7 * 16])  # one item block | 16, 16 and 7 of 39
def test_nearest_centroid_assignment(op, block_pairs, monkeypatch):
    import recx.data.features.graphstats as graphstats

    monkeypatch.setattr(graphstats, "_ASSIGN_PAIRS", block_pairs)
    g = torch.Generator().manual_seed(0)
    ue, ie = torch.randn(7, 5, generator=g), torch.randn(39, 5, generator=g)
    cents = torch.randn(6, 5, generator=g)
    x = {"hadamard": ue[:, None] * ie[None], "average": (ue[:, None] + ie[None]) / 2,
         "l1": (ue[:, None] - ie[None]).abs(), "l2": (ue[:, None] - ie[None]) ** 2}[op]
    brute = ((x[:, :, None, :] - cents) ** 2).sum(-1).argmin(-1)  # [7, 39]
    assert torch.equal(assign_grid(ue, ie, cents, op), brute)
    uu, ii = torch.meshgrid(torch.arange(7), torch.arange(39), indexing="ij")
    pairs = assign_pairs(ue[uu.reshape(-1)], ie[ii.reshape(-1)], cents, op)
    assert torch.equal(pairs.view(7, 39), brute)
    if op != "l1":  # one GEMM over all centroids (l1) need not tie duplicates bit for bit
        # a duplicated centroid ties exactly in the per-centroid products: the first index
        # wins, as with argmin
        twin = torch.cat([cents, cents[1:2]])
        assert torch.equal(assign_grid(ue, ie, twin, op), brute)


# ------------------------------------------------------------------------------- features
def test_statistics_are_consistent():
    d = domain_of(random_frame(), 40, 25)
    cfg = GraphStatsConfig.from_dict(SMALL)
    s = build_graph_stats(d, cfg, seed=0)
    eu, _ = training_edges(d)
    assert s.user_degree.sum() == s.item_degree.sum() == len(eu) == len(s.edge_label)
    assert s.n_node_clusters == auto_k("auto", int((s.user_degree > 0).sum()
                                                   + (s.item_degree > 0).sum()))
    assert s.n_edge_clusters == auto_k("auto", len(eu))
    assert s.edge_size.sum() == len(eu)
    assert np.array_equal(s.edge_size, np.bincount(s.edge_label, minlength=s.n_edge_clusters))
    has_u = s.user_degree > 0
    assert (s.user_cluster[has_u] >= 0).all() and (s.user_cluster[~has_u] == -1).all()
    for b in (s.user_act, s.item_act, s.node_size_bin, s.node_dens_bin, s.edge_size_bin,
              s.edge_dens_bin):
        assert b.min() >= 0 and b.max() <= 9
    # training edges go to their nearest centroid
    lab = assign_pairs(torch.from_numpy(s.user_emb[s.edge_u]),
                       torch.from_numpy(s.item_emb[s.edge_i]),
                       torch.from_numpy(s.edge_centroids), "hadamard").numpy()
    assert np.array_equal(lab, s.edge_label)
    assert {"walks_s", "word2vec_s", "node_kmeans_s", "edge_kmeans_s"} <= set(s.timings)


def test_valid_and_test_events_never_enter_the_features():
    frame = random_frame()
    d = domain_of(frame, 40, 25)
    other = frame.copy()
    held = d.split != TRAIN
    # move every valid/test event to item 25, keeping its time: the training graph is unchanged
    key = pd.Series(np.flatnonzero(held))
    order = frame.sort_values(["user", "ts"], kind="stable").index.to_numpy()
    other.loc[order[key], "item"] = 25
    d2 = domain_of(other, 40, 25, name="toy2")
    assert (d2.split == TEST).sum() == (d.split == TEST).sum()
    cfg = GraphStatsConfig.from_dict(SMALL)
    a, b = build_graph_stats(d, cfg), build_graph_stats(d2, cfg)
    for name in ("user_act", "item_act", "user_emb", "item_emb", "user_cluster",
                 "item_cluster", "node_size_bin", "edge_label", "edge_size_bin"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_features_are_invariant_to_renumbering_ids():
    frame = random_frame()
    d = domain_of(frame, 40, 25)
    eu, ei = training_edges(d)
    g = bipartite_graph(eu, ei, 40, 25)
    colours = wl_colours(g, np.r_[np.zeros(40, np.int64), np.ones(25, np.int64)])
    active = g.degree > 0
    assert len(np.unique(colours[active])) == active.sum()  # the precondition of exactness
    rng = np.random.default_rng(9)
    pu, pi = rng.permutation(40) + 1, rng.permutation(25) + 1  # old id k → new id p[k − 1]
    renamed = frame.assign(user=pu[frame["user"] - 1], item=pi[frame["item"] - 1])
    d2 = domain_of(renamed, 40, 25, name="renamed")
    cfg = GraphStatsConfig.from_dict(SMALL)
    a, b = build_graph_stats(d, cfg, seed=1), build_graph_stats(d2, cfg, seed=1)
    u_old, i_old = np.arange(1, 41), np.arange(1, 26)
    for side, old, new in (("user", u_old, pu), ("item", i_old, pi)):
        for name in ("degree", "act", "emb"):
            assert np.array_equal(getattr(a, f"{side}_{name}")[old],
                                  getattr(b, f"{side}_{name}")[new]), f"{side}_{name}"
        ca, cb = getattr(a, f"{side}_cluster")[old], getattr(b, f"{side}_cluster")[new]
        assert np.array_equal(a.node_size_bin[ca], b.node_size_bin[cb])
        assert np.array_equal(a.node_dens_bin[ca], b.node_dens_bin[cb])
    edge_bins = {}
    for s, to_new in ((a, (pu, pi)), (b, None)):
        u, i = (to_new[0][s.edge_u - 1], to_new[1][s.edge_i - 1]) if to_new else \
            (s.edge_u, s.edge_i)
        edge_bins[id(s)] = dict(zip(zip(u.tolist(), i.tolist(), strict=True),
                                    zip(s.edge_size_bin[s.edge_label].tolist(),
                                        s.edge_dens_bin[s.edge_label].tolist(), strict=True),
                                    strict=True))
    assert edge_bins[id(a)] == edge_bins[id(b)]
    assert canonical_ranks(40, 25, eu, ei)[0].tolist() != list(range(40))  # ids were reordered


def test_cached_in_the_store(tmp_path):
    d = domain_of(random_frame(), 40, 25)
    d.env = FeatureEnv(cache_root=tmp_path, seed=3, deterministic=True)
    cfg = GraphStatsConfig.from_dict(SMALL)
    first = graph_stats(d, cfg)
    entries = list((tmp_path / "features" / "toy").glob("statmlp-*"))
    assert [p.name for p in entries] == [f"statmlp-{first.feat_hash}"]
    meta = json.loads((entries[0] / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["timings"]["word2vec_s"] >= 0
    again = graph_stats(d, cfg)
    assert np.array_equal(first.user_emb, again.user_emb)
    assert np.array_equal(first.edge_label, again.edge_label)
    # another seed is another entry; the Word2Vec thread count is not part of the hash
    d.env = FeatureEnv(cache_root=tmp_path, seed=4, deterministic=True)
    assert graph_stats(d, GraphStatsConfig.from_dict(
        {**SMALL, "node2vec": {**SMALL["node2vec"], "workers": 1}})).feat_hash != \
        first.feat_hash


def test_config_errors():
    with pytest.raises(ConfigError, match=r"unknown model\.features key"):
        GraphStatsConfig.from_dict({"activity_bin": 10})
    with pytest.raises(ConfigError, match=r"edge\.op"):
        GraphStatsConfig.from_dict({"edge": {"op": "cosine"}})
    with pytest.raises(ConfigError, match=r"cluster\.mode"):
        GraphStatsConfig.from_dict({"cluster": {"mode": "both"}})
    with pytest.raises(ConfigError, match=r"unknown model\.features\.edge"):
        GraphStatsConfig.from_dict({"edge": {"kk": 3}})
