"""Dataset-agnostic statistics of an interaction graph (models/statmlp.md §2), for statmlp.

Everything is computed on the TRAINING graph of a domain: the distinct (user, item) pairs of its
training events. Valid and test events never enter degrees, walks, clusters or bins.

- Activity: degrees → percentile within the node's side (`100 · avgrank / n`, ties averaged,
  over every user 1..U or item 1..N of the domain) → `activity_bins` bins.
- Node clusters: Node2Vec embeddings (`node2vec.py`) clustered by k-means, jointly for users and
  items (or per side); each cluster's size and density become percentiles among the clusters →
  `cluster_bins` bins, given to every member node. Nodes without a training edge have no
  embedding and no cluster (code −1; the model gives them a dedicated "none" input).
- Edge clusters: an edge vector op(x_u, x_i) (Hadamard product by default), MiniBatchKMeans on a
  sample of training edges; any pair (u, i) goes to its nearest centroid; size = training edges in
  the cluster, density = edges / (distinct users × distinct items) → bins.

Renumbering invariance: the pipeline runs on a canonical node order (Weisfeiler–Lehman colours of
the graph, ties broken by id), so the features of a domain depend on its graph, not on how its
users and items happen to be numbered (exactly so when the colours are distinct; nodes with equal
colours are structurally alike).

Results are cached under `cache/features/<dataset>/statmlp-<feat_hash>/` (node2vec.npz +
graphstats.npz) when the domain has a `FeatureEnv`, else built in memory (seed 0, deterministic).
The edge cluster of every (user, item) pair, which full ranking of a large domain needs and which
costs minutes to assign, is cached beside them once a process has assigned it for every user
(`statmlp-edges-<feat_hash>/edges.npy`, one byte per pair).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from recx.config.hashing import stable_hash
from recx.data.features.node2vec import Node2VecConfig, bipartite_graph, node2vec
from recx.errors import ConfigError

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
EDGE_OPS = ("hadamard", "average", "l1", "l2")
PERCENTILE_RULES = ("avgrank", "midrank")


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class ClusterConfig:
    mode: str = "joint"  # joint | separate
    k: int | str = "auto"
    n_init: int = 10


@dataclass(frozen=True)
class EdgeConfig:
    op: str = "hadamard"
    k: int | str = "auto"
    fit_sample: int = 200_000
    n_init: int = 3


@dataclass(frozen=True)
class GraphStatsConfig:
    """The `features` block of conf/model/statmlp.yaml, without `fields` (the model's input
    selection, which does not change the statistics)."""

    activity_bins: int = 10
    cluster_bins: int = 10
    percentile: str = "avgrank"
    node2vec: Node2VecConfig = field(default_factory=Node2VecConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)

    @classmethod
    def from_dict(cls, block: dict | None) -> GraphStatsConfig:
        block = dict(block or {})
        known = {f.name for f in fields(cls)}
        _unknown(block, known, "model.features")
        sub = {}
        for name, klass in (("cluster", ClusterConfig), ("edge", EdgeConfig)):
            part = dict(block.pop(name, None) or {})
            _unknown(part, {f.name for f in fields(klass)}, f"model.features.{name}")
            sub[name] = klass(**part)
        cfg = cls(node2vec=Node2VecConfig.from_dict(block.pop("node2vec", None)), **sub,
                  **block)
        cfg.check()
        return cfg

    def check(self) -> None:
        problems = []
        for key in ("activity_bins", "cluster_bins"):
            if int(getattr(self, key)) < 2:
                problems.append(f"{key}={getattr(self, key)!r} must be ≥ 2")
        if self.percentile not in PERCENTILE_RULES:
            problems.append(f"percentile={self.percentile!r} must be one of {PERCENTILE_RULES}")
        if self.cluster.mode not in ("joint", "separate"):
            problems.append(f"cluster.mode={self.cluster.mode!r} must be joint or separate")
        if self.edge.op not in EDGE_OPS:
            problems.append(f"edge.op={self.edge.op!r} must be one of {EDGE_OPS}")
        for name, k in (("cluster.k", self.cluster.k), ("edge.k", self.edge.k)):
            if k != "auto" and (not isinstance(k, int) or k < 1):
                problems.append(f"{name}={k!r} must be auto or an integer ≥ 1")
        if self.cluster.n_init < 1 or self.edge.n_init < 1 or self.edge.fit_sample < 1:
            problems.append("cluster.n_init, edge.n_init and edge.fit_sample must be ≥ 1")
        if problems:
            raise ConfigError("model.features: " + "; ".join(problems),
                              hint="fix the model.features.* overrides")

    def hash_key(self) -> dict:
        d = asdict(self)
        d["node2vec"] = self.node2vec.hash_key()
        return d


def _unknown(block: dict, known: set, where: str) -> None:
    bad = sorted(set(block) - known)
    if bad:
        raise ConfigError(f"unknown {where} key(s) {bad}",
                          hint=f"valid keys: {', '.join(sorted(known))}")


# ------------------------------------------------------------------------------- percentiles
def avg_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged (float64)."""
    a = np.asarray(values)
    n = len(a)
    order = np.argsort(a, kind="stable")
    s = a[order]
    start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if n else np.zeros(0, np.int64)
    size = np.diff(np.r_[start, n])
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(start + (size + 1) / 2.0, size)
    return ranks


def percentile_bins(values: np.ndarray, n_bins: int, rule: str = "avgrank") -> np.ndarray:
    """Bins 0..n_bins−1 of each value's percentile among `values`.

    avgrank (the spec): perc = 100 · avgrank / n, bin = min(floor(perc · n_bins / 100),
    n_bins − 1); midrank: bin = floor(n_bins · (avgrank − ½) / n), which spreads n equal-width
    ranks evenly (avgrank puts the top two of ten clusters in the same bin and never uses bin 0).
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    r = avg_ranks(values)
    if rule == "midrank":
        b = np.floor(n_bins * (r - 0.5) / n)
    else:
        b = np.floor((100.0 * r / n) * n_bins / 100.0)
    return np.clip(b, 0, n_bins - 1).astype(np.int64)


def auto_k(k: int | str, n_points: int) -> int:
    """`auto` = clamp(round(√(n / 2)), 10, 100); never more clusters than points."""
    if k == "auto":
        k = min(100, max(10, round(math.sqrt(n_points / 2))))
    return max(1, min(int(k), n_points))


# ----------------------------------------------------------------------------- training graph
def training_edges(domain) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs of the training events, sorted by (user, item)."""
    m = domain.train_mask
    n1 = domain.n_items + 1
    key = np.unique(domain.user[m].astype(np.int64) * n1 + domain.item[m])
    return (key // n1).astype(np.int64), (key % n1).astype(np.int64)


def degrees(domain, eu: np.ndarray, ei: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.bincount(eu, minlength=domain.n_users + 1),
            np.bincount(ei, minlength=domain.n_items + 1))


def activity_bins(domain, cfg: GraphStatsConfig, edges=None) -> tuple[np.ndarray, np.ndarray]:
    """Activity bins of users [U + 1] and items [N + 1] (index 0 = padding = 0)."""
    eu, ei = training_edges(domain) if edges is None else edges
    du, di = degrees(domain, eu, ei)
    ub = np.zeros(domain.n_users + 1, dtype=np.int64)
    ib = np.zeros(domain.n_items + 1, dtype=np.int64)
    ub[1:] = percentile_bins(du[1:], cfg.activity_bins, cfg.percentile)
    ib[1:] = percentile_bins(di[1:], cfg.activity_bins, cfg.percentile)
    return ub, ib


# ------------------------------------------------------------------------- canonical order
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def wl_colours(graph, side: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Weisfeiler–Lehman colours (uint64 hashes): start from (side, degree), then hash each
    node's colour with the multiset of its neighbours' colours, `rounds` times. Invariant to
    renumbering the nodes."""
    deg = graph.degree.astype(np.uint64)
    colour = _mix(side.astype(np.uint64) * np.uint64(1 << 32) + deg)
    for _ in range(rounds):
        h = _mix(colour)[graph.indices]
        with np.errstate(over="ignore"):
            cs = np.concatenate([np.zeros(1, np.uint64), np.cumsum(h, dtype=np.uint64)])
            neigh = cs[graph.indptr[1:]] - cs[graph.indptr[:-1]]  # multiset sum mod 2^64
            colour = _mix(colour * np.uint64(0x100000001B3) + neigh)
    return colour


def canonical_ranks(n_users: int, n_items: int, eu: np.ndarray,
                    ei: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical 0-based ids per side (rank[u − 1] for user u, 1-based edges eu, ei) that order
    users and items by WL colour, ties by id."""
    g = bipartite_graph(eu, ei, n_users, n_items)
    side = np.r_[np.zeros(n_users, np.int64), np.ones(n_items, np.int64)]
    colour = wl_colours(g, side)
    ranks = []
    for lo, n in ((0, n_users), (n_users, n_items)):
        order = np.lexsort((np.arange(n), colour[lo:lo + n]))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        ranks.append(rank)
    return ranks[0], ranks[1]


# ------------------------------------------------------------------------------- clustering
_SERIAL_WORK = 2e7  # points × clusters × dims below which k-means runs on one thread


def _threads(work: float):
    """One OpenMP thread for small k-means problems: there, starting and synchronising threads
    costs more than it saves (much more on a loaded machine)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1) if work < _SERIAL_WORK else contextlib.nullcontext()


def kmeans_labels(x: np.ndarray, k: int, n_init: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    with _threads(x.size * k):
        return km.fit_predict(x.astype(np.float64)).astype(np.int64)


def cluster_size_density(user_cl: np.ndarray, item_cl: np.ndarray, eu: np.ndarray,
                         ei: np.ndarray, k: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Size and density of k node clusters (labels −1 = no cluster).

    joint: size = |U_C| + |I_C|, density = |E ∩ (U_C × I_C)| / (|U_C| · |I_C|) (0 if a side is
    empty). separate (users' clusters first, then items'): size = |C|, density = edges incident
    to C / (|C| · active nodes of the other side)."""
    nu = np.bincount(user_cl[user_cl >= 0], minlength=k)
    ni = np.bincount(item_cl[item_cl >= 0], minlength=k)
    cu, ci = user_cl[eu], item_cl[ei]
    if mode == "joint":
        inside = (cu == ci) & (cu >= 0)
        e_in = np.bincount(cu[inside], minlength=k)
        denom = nu * ni
        dens = np.where(denom > 0, e_in / np.maximum(denom, 1), 0.0)
        return (nu + ni).astype(np.int64), dens.astype(np.float64)
    incident = np.bincount(cu[cu >= 0], minlength=k) + np.bincount(ci[ci >= 0], minlength=k)
    other = np.where(nu > 0, int((item_cl >= 0).sum()), int((user_cl >= 0).sum()))
    size = nu + ni
    denom = size * other
    dens = np.where(denom > 0, incident / np.maximum(denom, 1), 0.0)
    return size.astype(np.int64), dens.astype(np.float64)


def edge_vectors(a, b, op: str):
    """op(x_u, x_i) row by row (numpy or torch)."""
    if op == "hadamard":
        return a * b
    if op == "average":
        return (a + b) / 2
    if op == "l1":
        return abs(a - b)
    return (a - b) ** 2


def assign_pairs(ue: torch.Tensor, ie: torch.Tensor, centroids: torch.Tensor,
                 op: str) -> torch.Tensor:
    """Nearest edge centroid of each pair (ue[m], ie[m]) → [M] (long). argmin_c ‖x − c‖² =
    argmin_c (‖c‖² − 2 x·c): ‖x‖² is the same for every c."""
    x = edge_vectors(ue, ie, op)
    return ((centroids * centroids).sum(1) - 2 * x @ centroids.T).argmin(1)


_ASSIGN_PAIRS = 1 << 17  # pairs per item block of assign_grid on the CPU


def assign_grid(ue: torch.Tensor, ie: torch.Tensor, centroids: torch.Tensor,
                op: str) -> torch.Tensor:
    """Nearest edge centroid of every pair of B users × n items → [B, n] (long).

    argmin_c ‖x − c‖² = argmax_c (x·c − ‖c‖²/2). Where the operator factorises, x·c for one
    centroid is one [B, n] product, and a running maximum over the centroids (first index on
    exact ties, as argmin) never holds a [B, n, k] tensor: that tensor's memory traffic, not the
    arithmetic, was the cost (bench/bench_statmlp_assign.py). On the CPU the items go in blocks
    whose [B, block] passes fit the cache, and the running argmax is int16.
    hadamard: x·c = u·(i ⊙ c); average: (u·c + i·c)/2; l2: u²·c − 2u·(i ⊙ c) + i²·c.
    l1 (|u − i|, no factorisation) builds the [B, n, d] edge vectors once."""
    half_c2 = (centroids * centroids).sum(1) / 2  # [k]
    if op == "l1":
        xc = (ue[:, None, :] - ie[None]).abs() @ centroids.T
        return (xc - half_c2).argmax(-1)
    if op in ("average", "l2"):
        # one matrix-vector product per centroid, not one GEMM: a GEMM may sum the columns of
        # two identical centroids in different orders, and their exact tie must stay a tie
        a, b = (ue, ie) if op == "average" else (ue * ue, ie * ie)
        uc = torch.stack([a @ c for c in centroids], 1)  # [B, k]
        ic = torch.stack([b @ c for c in centroids], 1)  # [n, k]
        if op == "average":
            uc, ic = uc / 2, ic / 2
    out = torch.empty(ue.shape[0], ie.shape[0], dtype=torch.long, device=ue.device)
    # item blocks of ~2^17 pairs: the k passes over a block stay in the CPU's cache (2x)
    block = (max(1, ie.shape[0]) if ue.device.type != "cpu"
             else max(16, _ASSIGN_PAIRS // max(1, ue.shape[0])))
    small = torch.int16 if centroids.shape[0] <= torch.iinfo(torch.int16).max else torch.long
    for lo in range(0, ie.shape[0], block):
        ib = ie[lo:lo + block]
        icb = ic[lo:lo + block] if op in ("average", "l2") else None
        best = torch.full((ue.shape[0], ib.shape[0]), -torch.inf, dtype=ue.dtype,
                          device=ue.device)
        arg = torch.zeros(best.shape, dtype=small, device=ue.device)
        for j in range(centroids.shape[0]):
            if op == "hadamard":
                s = ue @ (ib * centroids[j]).T
            elif op == "average":
                s = uc[:, j, None] + icb[None, :, j]
            else:  # l2
                s = uc[:, j, None] - 2 * ue @ (ib * centroids[j]).T + icb[None, :, j]
            s -= half_c2[j]
            better = s > best
            best = torch.maximum(best, s)
            arg.masked_fill_(better, j)
        out[:, lo:lo + block] = arg
    return out


def edge_clusters(ue: np.ndarray, ie: np.ndarray, cfg: EdgeConfig, seed: int):
    """(centroids float32 [k, d], labels [E]) of the training edges with vectors
    op(ue[m], ie[m]); MiniBatchKMeans on at most `fit_sample` of them."""
    from sklearn.cluster import MiniBatchKMeans

    x = edge_vectors(ue, ie, cfg.op).astype(np.float32)
    k = auto_k(cfg.k, len(x))
    rng = np.random.default_rng(seed)
    sample = x if len(x) <= cfg.fit_sample else x[np.sort(rng.choice(len(x), cfg.fit_sample,
                                                                     replace=False))]
    km = MiniBatchKMeans(n_clusters=k, n_init=cfg.n_init, random_state=seed,
                         batch_size=min(4096, len(sample)))
    with _threads(sample.size * k):
        km.fit(sample.astype(np.float64))
    centroids = km.cluster_centers_.astype(np.float32)
    labels = np.empty(len(x), dtype=np.int64)
    c = torch.from_numpy(centroids)
    for lo in range(0, len(x), 1 << 16):
        labels[lo:lo + (1 << 16)] = assign_pairs(torch.from_numpy(ue[lo:lo + (1 << 16)]),
                                                 torch.from_numpy(ie[lo:lo + (1 << 16)]), c,
                                                 cfg.op).numpy()
    return centroids, labels


def edge_size_density(labels: np.ndarray, eu: np.ndarray, ei: np.ndarray,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
    """size = training edges per cluster; density = size / (distinct users × distinct items)."""
    size = np.bincount(labels, minlength=k)

    def distinct(ids):
        width = int(ids.max()) + 1 if len(ids) else 1
        return np.bincount(np.unique(labels * width + ids) // width, minlength=k)

    denom = distinct(eu) * distinct(ei)
    return size.astype(np.int64), np.where(denom > 0, size / np.maximum(denom, 1), 0.0)


# --------------------------------------------------------------------------------- features
_ARRAYS = ("user_degree", "item_degree", "user_act", "item_act", "user_cluster", "item_cluster",
           "node_size", "node_density", "node_size_bin", "node_dens_bin", "edge_centroids",
           "edge_size", "edge_density", "edge_size_bin", "edge_dens_bin", "edge_u", "edge_i",
           "edge_label")
_EMBEDDINGS = ("user_emb", "item_emb")


@dataclass
class GraphStats:
    """The statistics of one domain (ids as in the domain: users 1..U, items 1..N, 0 = pad)."""

    user_degree: np.ndarray  # int64 [U + 1] training degree
    item_degree: np.ndarray  # int64 [N + 1]
    user_act: np.ndarray  # int64 [U + 1] activity bin
    item_act: np.ndarray  # int64 [N + 1]
    user_emb: np.ndarray  # float32 [U + 1, d] Node2Vec (zeros without a training edge)
    item_emb: np.ndarray  # float32 [N + 1, d]
    user_cluster: np.ndarray  # int64 [U + 1] node cluster, −1 = none
    item_cluster: np.ndarray  # int64 [N + 1]
    node_size: np.ndarray  # int64 [k] cluster size
    node_density: np.ndarray  # float64 [k]
    node_size_bin: np.ndarray  # int64 [k]
    node_dens_bin: np.ndarray  # int64 [k]
    edge_centroids: np.ndarray  # float32 [k_e, d]
    edge_size: np.ndarray  # int64 [k_e]
    edge_density: np.ndarray  # float64 [k_e]
    edge_size_bin: np.ndarray  # int64 [k_e]
    edge_dens_bin: np.ndarray  # int64 [k_e]
    edge_u: np.ndarray  # int64 [E] training edges (distinct pairs, sorted by user, item)
    edge_i: np.ndarray  # int64 [E]
    edge_label: np.ndarray  # int64 [E] edge cluster of each training edge
    config: GraphStatsConfig = field(default_factory=GraphStatsConfig)
    timings: dict = field(default_factory=dict)
    feat_hash: str = ""

    @property
    def n_node_clusters(self) -> int:
        return len(self.node_size)

    @property
    def n_edge_clusters(self) -> int:
        return len(self.edge_size)


def node_clusters(user_emb: np.ndarray, item_emb: np.ndarray, deg: tuple, ranks: tuple,
                  cc, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """k-means clusters of the nodes with training edges (users and items jointly, or apart):
    (user cluster [U + 1], item cluster [N + 1], -1 for nodes without one; number of clusters)."""
    (du, di), (ru, ri) = deg, ranks
    user_cl = np.full(len(du), -1, np.int64)
    item_cl = np.full(len(di), -1, np.int64)
    # active nodes in canonical order (k-means++ seeding depends on the row order)
    act_u = np.flatnonzero(du[1:] > 0) + 1
    act_u = act_u[np.argsort(ru[act_u - 1], kind="stable")]
    act_i = np.flatnonzero(di[1:] > 0) + 1
    act_i = act_i[np.argsort(ri[act_i - 1], kind="stable")]
    if cc.mode == "joint":
        x = np.concatenate([user_emb[act_u], item_emb[act_i]])
        k = auto_k(cc.k, len(x))
        lab = kmeans_labels(x, k, cc.n_init, seed)
        user_cl[act_u], item_cl[act_i] = lab[:len(act_u)], lab[len(act_u):]
        return user_cl, item_cl, k
    k_u, k_i = auto_k(cc.k, len(act_u)), auto_k(cc.k, len(act_i))
    user_cl[act_u] = kmeans_labels(user_emb[act_u], k_u, cc.n_init, seed)
    item_cl[act_i] = k_u + kmeans_labels(item_emb[act_i], k_i, cc.n_init, seed)
    return user_cl, item_cl, k_u + k_i


def build_graph_stats(domain, cfg: GraphStatsConfig, seed: int = 0,
                      deterministic: bool = True) -> GraphStats:
    """Compute every statistic of `domain` in memory (no cache)."""
    t = {}
    t0 = time.perf_counter()
    eu, ei = training_edges(domain)
    U, N = domain.n_users, domain.n_items
    du, di = degrees(domain, eu, ei)
    user_act, item_act = activity_bins(domain, cfg, (eu, ei))
    # canonical order: relabel both sides by WL colour so that nothing below depends on ids
    ru, ri = canonical_ranks(U, N, eu, ei)
    cu, ci = ru[eu - 1], ri[ei - 1]
    t["activity_s"] = time.perf_counter() - t0

    graph = bipartite_graph(cu + 1, ci + 1, U, N)
    emb = node2vec(graph, cfg.node2vec, seed=seed, deterministic=deterministic, bipartite=True,
                   timings=t)
    d = cfg.node2vec.dim
    user_emb = np.zeros((U + 1, d), np.float32)
    item_emb = np.zeros((N + 1, d), np.float32)
    user_emb[1:] = emb[:U][ru]
    item_emb[1:] = emb[U:][ri]

    t1 = time.perf_counter()
    user_cl, item_cl, k = node_clusters(user_emb, item_emb, (du, di), (ru, ri), cfg.cluster,
                                        seed)
    node_size, node_density = cluster_size_density(user_cl, item_cl, eu, ei, k,
                                                   cfg.cluster.mode)
    t["node_kmeans_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    order = np.lexsort((ci, cu))  # training edges in canonical order for the fit sample
    centroids, lab_c = edge_clusters(user_emb[eu[order]], item_emb[ei[order]], cfg.edge, seed)
    edge_label = np.empty(len(eu), np.int64)
    edge_label[order] = lab_c
    k_e = len(centroids)
    edge_size, edge_density = edge_size_density(edge_label, eu, ei, k_e)
    t["edge_kmeans_s"] = time.perf_counter() - t2
    t["total_s"] = time.perf_counter() - t0
    nb = cfg.cluster_bins
    return GraphStats(
        user_degree=du, item_degree=di, user_act=user_act, item_act=item_act,
        user_emb=user_emb, item_emb=item_emb, user_cluster=user_cl, item_cluster=item_cl,
        node_size=node_size, node_density=node_density,
        node_size_bin=percentile_bins(node_size, nb, cfg.percentile),
        node_dens_bin=percentile_bins(node_density, nb, cfg.percentile),
        edge_centroids=centroids, edge_size=edge_size, edge_density=edge_density,
        edge_size_bin=percentile_bins(edge_size, nb, cfg.percentile),
        edge_dens_bin=percentile_bins(edge_density, nb, cfg.percentile),
        edge_u=eu, edge_i=ei, edge_label=edge_label, config=cfg, timings=t)


def feat_hash(domain, cfg: GraphStatsConfig, seed: int, deterministic: bool) -> str:
    """Hash of what the statistics depend on: the data, the feature config (not the thread
    count), the seed, determinism and the feature code version."""
    return stable_hash(domain.data_hash, cfg.hash_key(), int(seed), bool(deterministic),
                       FEATURE_VERSION)


@dataclass
class CodeTables:
    """statmlp's binned inputs of one domain: the codes of every user, item and edge cluster
    (`cluster_bins` = "no cluster" in the size and density columns), and the training edges."""

    user: np.ndarray  # int64 [U + 1, 3] activity bin, node-cluster size bin, density bin
    item: np.ndarray  # int64 [N + 1, 3]
    edge: np.ndarray  # int64 [k_e + 1, 2] edge-cluster size and density bins; last row: none
    edge_u: np.ndarray  # int64 [E] training edges
    edge_i: np.ndarray
    edge_label: np.ndarray  # int64 [E] each edge's cluster (0 without the graph)
    stats: GraphStats | None  # None: activity fields only (no Node2Vec built)


def code_tables(domain, cfg: GraphStatsConfig, graph: bool) -> CodeTables:
    """The code tables of `domain`; `graph=False` builds the activity bins alone."""
    none = cfg.cluster_bins
    ucodes = np.full((domain.n_users + 1, 3), none, np.int64)
    icodes = np.full((domain.n_items + 1, 3), none, np.int64)
    if not graph:
        eu, ei = training_edges(domain)
        ucodes[:, 0], icodes[:, 0] = activity_bins(domain, cfg, (eu, ei))
        return CodeTables(ucodes, icodes, np.full((1, 2), none, np.int64), eu, ei,
                          np.zeros(len(eu), np.int64), None)
    s = graph_stats(domain, cfg)
    ucodes[:, 0], icodes[:, 0] = s.user_act, s.item_act
    for codes, cl in ((ucodes, s.user_cluster), (icodes, s.item_cluster)):
        has = cl >= 0
        codes[has, 1] = s.node_size_bin[cl[has]]
        codes[has, 2] = s.node_dens_bin[cl[has]]
    ecodes = np.full((s.n_edge_clusters + 1, 2), none, np.int64)
    ecodes[:-1, 0], ecodes[:-1, 1] = s.edge_size_bin, s.edge_dens_bin
    return CodeTables(ucodes, icodes, ecodes, s.edge_u, s.edge_i, s.edge_label, s)


def graph_stats(domain, cfg: GraphStatsConfig) -> GraphStats:
    """The statistics of `domain`: from the store when the domain has a `FeatureEnv` (seed and
    determinism from it), else built in memory with seed 0, deterministically."""
    env = getattr(domain, "env", None)
    if env is None or getattr(env, "cache_root", None) is None:
        h = feat_hash(domain, cfg, 0, True)
        stats = build_graph_stats(domain, cfg, seed=0, deterministic=True)
        stats.feat_hash = h
        return stats
    from recx.store import Store

    seed, det = int(env.seed), bool(env.deterministic)
    h = feat_hash(domain, cfg, seed, det)
    store = Store(env.cache_root)
    entry = store.entry("features", domain.name, f"statmlp-{h}")
    timings: dict = {}

    def build(tmp: Path) -> None:
        s = build_graph_stats(domain, cfg, seed=seed, deterministic=det)
        np.savez(tmp / "node2vec.npz", **{k: getattr(s, k) for k in _EMBEDDINGS})
        np.savez(tmp / "graphstats.npz", **{k: getattr(s, k) for k in _ARRAYS})
        timings.update(s.timings)

    store.get_or_build(entry, build, meta={
        "kind": "features", "feature": "statmlp", "dataset": domain.name,
        "data_hash": domain.data_hash, "feat_hash": h, "config": cfg.hash_key(), "seed": seed,
        "deterministic": det, "feature_version": FEATURE_VERSION, "timings": timings})
    arrays = {}
    for name in ("node2vec.npz", "graphstats.npz"):
        with np.load(entry / name) as z:
            arrays.update({k: z[k] for k in z.files})
    if not timings:  # built earlier: the build's timings are in its provenance
        timings = json.loads((entry / "meta.json").read_text()).get("timings") or {}
    return GraphStats(**arrays, config=cfg, timings=timings, feat_hash=h)



def _edge_grid_entry(domain, feat: str):
    """(store, entry) of the edge clusters of every (user, item) pair of `domain` under the
    statistics `feat` (a feat_hash), or None for a domain without a store."""
    root = getattr(getattr(domain, "env", None), "cache_root", None)
    if root is None or not feat:
        return None
    from recx.store import Store

    store = Store(root)
    return store, store.entry("features", domain.name, f"statmlp-edges-{feat}")


def load_edge_grid(domain, feat: str) -> np.ndarray | None:
    """The cached [U + 1, N + 1] edge-code rows of `domain`, or None when not built yet."""
    from recx.store import is_ready

    where = _edge_grid_entry(domain, feat)
    if where is None or not is_ready(where[1]):
        return None
    return np.load(where[1] / "edges.npy")


def save_edge_grid(domain, feat: str, rows: np.ndarray) -> None:
    """Cache a complete grid of edge-code rows (atomically; a no-op without a store)."""
    where = _edge_grid_entry(domain, feat)
    if where is None:
        return
    store, entry = where
    store.get_or_build(entry, lambda tmp: np.save(tmp / "edges.npy", rows), meta={
        "kind": "features", "feature": "statmlp-edges", "dataset": domain.name,
        "feat_hash": feat, "shape": list(rows.shape), "dtype": str(rows.dtype)})
