"""Node2Vec (recx/data/features/node2vec.py): walk validity, second-order transition
probabilities against the Node2Vec definition (chi-square, fixed seeds), determinism across
processes and PYTHONHASHSEED values."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import chisquare

from recx.data.features.node2vec import (
    CSRGraph,
    Node2VecConfig,
    bipartite_graph,
    node2vec,
    random_walks,
    resolve_workers,
    walk_starts,
)
from recx.errors import ConfigError

SMALL = Node2VecConfig(dim=8, walks_per_node=4, walk_length=12, window=3, negative=2)


def random_bipartite(seed=0, n_users=30, n_items=20, n_edges=120):
    rng = np.random.default_rng(seed)
    u = rng.integers(1, n_users + 1, n_edges)
    i = rng.integers(1, n_items + 1, n_edges)
    return bipartite_graph(u, i, n_users, n_items)


def test_csr_is_simple_undirected_and_sorted():
    g = CSRGraph.from_edges(np.array([0, 0, 1, 2, 2, 3]), np.array([1, 1, 2, 0, 2, 0]), 5)
    # duplicate 0-1 and self-loop 2-2 dropped; node 4 isolated
    assert g.degree.tolist() == [3, 2, 2, 1, 0]
    assert g.indices[g.indptr[0]:g.indptr[1]].tolist() == [1, 2, 3]
    assert g.is_edge(np.array([0, 1, 3, 4]), np.array([3, 0, 1, 0])).tolist() == \
        [True, True, False, False]
    rev = g.reverse_positions()
    rows = np.repeat(np.arange(g.n_nodes), g.degree)
    assert (g.indices[rev] == rows).all() and (rows[rev] == g.indices).all()


def test_bipartite_node_layout():
    g = bipartite_graph(np.array([1, 2, 2]), np.array([1, 1, 3]), n_users=2, n_items=3)
    # users 1, 2 → nodes 0, 1; items 1, 2, 3 → nodes 2, 3, 4 (item 2 has no edge)
    assert g.degree.tolist() == [1, 2, 2, 0, 1]
    assert g.indices[g.indptr[1]:g.indptr[2]].tolist() == [2, 4]


@pytest.mark.parametrize("p,q,bipartite", [(1.0, 1.0, True), (0.5, 2.0, True),
                                           (4.0, 0.25, False)])
def test_walks_are_valid(p, q, bipartite):
    g = random_bipartite()
    rng = np.random.default_rng(1)
    starts = walk_starts(g, 3, rng)
    assert len(starts) == 3 * int((g.degree > 0).sum())
    assert sorted(set(starts.tolist())) == np.flatnonzero(g.degree > 0).tolist()
    walks = random_walks(g, starts, 15, p, q, rng, bipartite=bipartite, batch_walkers=37)
    assert walks.shape == (len(starts), 15) and walks.dtype == np.int32
    assert (walks[:, 0] == starts).all()
    a, b = walks[:, :-1].ravel(), walks[:, 1:].ravel()
    assert g.is_edge(a, b).all()  # every step follows an edge


def test_start_without_neighbour_is_an_error():
    g = bipartite_graph(np.array([1]), np.array([1]), 2, 1)
    with pytest.raises(ValueError, match="neighbour"):
        random_walks(g, np.array([1]), 5)


def _next_after(g, prev, cur, p, q, bipartite, n=300_000, seed=0):
    """Counts of the third node of walks prev → cur → x (walks started at prev)."""
    walks = random_walks(g, np.full(n, prev), 3, p, q, np.random.default_rng(seed),
                         bipartite=bipartite)
    x = walks[walks[:, 1] == cur, 2]
    nbrs = g.indices[g.indptr[cur]:g.indptr[cur + 1]]
    return nbrs, np.array([(x == v).sum() for v in nbrs])


def _check(counts, weights):
    expected = counts.sum() * np.asarray(weights) / np.sum(weights)
    assert chisquare(counts, expected).pvalue > 1e-3
    # the test has power: a uniform choice is clearly rejected
    uniform = np.full(len(counts), counts.sum() / len(counts))
    if len(set(np.round(weights, 9))) > 1:
        assert chisquare(counts, uniform).pvalue < 1e-6


@pytest.mark.parametrize("p,q", [(0.5, 2.0), (4.0, 0.25), (1.0, 1.0)])
def test_bipartite_transition_probabilities(p, q):
    # users 1..3, items 1..4; u1 — i1..i4, u2 — i1, i2, u3 — i1
    g = bipartite_graph(np.array([1, 1, 1, 1, 2, 2, 3]), np.array([1, 2, 3, 4, 1, 2, 1]), 3, 4)
    prev, cur = 3, 0  # item 1 → user 1
    nbrs, counts = _next_after(g, prev, cur, p, q, bipartite=True)
    # Node2Vec: π(x) = 1/p back to prev, 1/q to nodes at distance 2 (no x is adjacent to prev)
    weights = [1 / p if v == prev else 1 / q for v in nbrs]
    _check(counts, weights)


@pytest.mark.parametrize("p,q", [(0.5, 2.0), (4.0, 0.25)])
def test_general_graph_transition_probabilities(p, q):
    # triangle 0-1-2 plus 1-3, 1-4, 3-4: from prev 0 at cur 1, node 2 is adjacent to prev
    g = CSRGraph.from_edges(np.array([0, 0, 1, 1, 1, 3]), np.array([1, 2, 2, 3, 4, 4]), 5)
    nbrs, counts = _next_after(g, 0, 1, p, q, bipartite=False)
    assert nbrs.tolist() == [0, 2, 3, 4]
    _check(counts, [1 / p, 1.0, 1 / q, 1 / q])


def test_walks_and_embeddings_are_seeded():
    g = random_bipartite()
    w1 = random_walks(g, walk_starts(g, 2, np.random.default_rng(5)), 10, 0.5, 2.0,
                      np.random.default_rng(6), bipartite=True)
    w2 = random_walks(g, walk_starts(g, 2, np.random.default_rng(5)), 10, 0.5, 2.0,
                      np.random.default_rng(6), bipartite=True)
    assert np.array_equal(w1, w2)
    e1 = node2vec(g, SMALL, seed=3, deterministic=True, bipartite=True)
    e2 = node2vec(g, SMALL, seed=3, deterministic=True, bipartite=True)
    assert np.array_equal(e1, e2)
    assert not np.array_equal(e1, node2vec(g, SMALL, seed=4, deterministic=True,
                                           bipartite=True))
    assert e1.shape == (g.n_nodes, 8) and np.isfinite(e1).all()
    isolated = g.degree == 0
    assert (e1[isolated] == 0).all() and (np.abs(e1[~isolated]).sum(1) > 0).all()


_SCRIPT = """
import hashlib, numpy as np
from recx.data.features.node2vec import Node2VecConfig, bipartite_graph, node2vec
rng = np.random.default_rng(0)
g = bipartite_graph(rng.integers(1, 41, 200), rng.integers(1, 31, 200), 40, 30)
cfg = Node2VecConfig(dim=16, walks_per_node=5, walk_length=20, window=5, negative=3)
emb = node2vec(g, cfg, seed=7, deterministic=True, bipartite=True)
print(hashlib.sha256(emb.tobytes()).hexdigest())
"""


@pytest.mark.slow  # two fresh interpreters importing gensim: 7 s idle, 20 s on a loaded machine
def test_deterministic_across_python_hash_seeds():
    """ARCHITECTURE §6.6: identical vectors in two processes with different PYTHONHASHSEED."""
    out = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        out.append(res.stdout.strip().splitlines()[-1])
    assert out[0] == out[1] and len(out[0]) == len(hashlib.sha256().hexdigest())


def test_auto_workers_follow_torch_threads_and_one_worker_reproduces():
    """workers=auto takes torch's thread count, so `threads=1` (jobs side by side) gives one
    Word2Vec worker, which reproduces a seed even with deterministic=false."""
    import torch

    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert resolve_workers("auto", deterministic=False) == 1
        g = random_bipartite()
        e1 = node2vec(g, SMALL, seed=3, deterministic=False, bipartite=True)
        e2 = node2vec(g, SMALL, seed=3, deterministic=False, bipartite=True)
        assert np.array_equal(e1, e2)
        torch.set_num_threads(2)
        assert resolve_workers("auto", deterministic=False) == 2
        assert resolve_workers("auto", deterministic=True) == 1
        assert resolve_workers(3, deterministic=False) == 3
    finally:
        torch.set_num_threads(n)


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown"):
        Node2VecConfig.from_dict({"walk_len": 3})
    with pytest.raises(ConfigError, match="p=0"):
        Node2VecConfig.from_dict({"p": 0})
    with pytest.raises(ConfigError, match="workers"):
        Node2VecConfig.from_dict({"workers": "many"})
    assert "workers" not in Node2VecConfig.from_dict({"workers": 2}).hash_key()
