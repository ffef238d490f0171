"""Node2Vec (Grover & Leskovec 2016) done fast: vectorised random walks + gensim Word2Vec
(ARCHITECTURE §6.6, models/statmlp.md §2.2).

Walks: every walker of a batch advances together, with one numpy loop over the walk steps (never
a loop per walker). With p = q = 1 the next node is `indices[indptr[cur] + floor(u · deg[cur])]`.
Otherwise a second-order step follows Node2Vec's unnormalised weights π(x) = 1/p if x is the
previous node, 1 if x is adjacent to the previous node and 1/q otherwise, without the per-edge
alias tables of the reference code:
- on a bipartite graph x is never adjacent to the previous node (both lie on the same side), so
  π ∈ {1/p, 1/q} and the step is sampled directly: back with probability
  (1/p) / (1/p + (deg − 1)/q), else uniformly among the other neighbours (the previous node's slot
  in the current row is known from the reverse-edge index, so no search is needed);
- on a general graph, rejection sampling: a uniform neighbour x is accepted with probability
  π(x) / max(1/p, 1, 1/q), with a vectorised adjacency test (binary search over the sorted CSR
  keys). Both give exactly the transition probabilities π(x) / Σπ.

Embeddings: walks are fed to gensim Word2Vec (skip-gram, negative sampling) as lists of node ids.
`deterministic=True` forces one worker, the given seed and a crc32 `hashfxn`, so the vectors do
not depend on thread scheduling or on PYTHONHASHSEED; otherwise Word2Vec uses `workers` threads.
"""

from __future__ import annotations

import contextlib
import logging
import time
import zlib
from dataclasses import asdict, dataclass, fields

import numpy as np

from recx.errors import ConfigError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class Node2VecConfig:
    """The `features.node2vec` block of conf/model/statmlp.yaml."""

    dim: int = 64
    walks_per_node: int = 10
    walk_length: int = 80
    p: float = 1.0
    q: float = 1.0
    window: int = 10
    negative: int = 5
    epochs: int = 1
    sample: float = 1e-3
    workers: int | str = "auto"
    batch_walkers: int = 1_000_000

    @classmethod
    def from_dict(cls, block: dict | None) -> Node2VecConfig:
        block = dict(block or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(f"unknown model.features.node2vec key(s) {unknown}",
                              hint=f"valid keys: {', '.join(sorted(known))}")
        cfg = cls(**block)
        problems = [f"{k}={getattr(cfg, k)!r} must be ≥ 1" for k in
                    ("dim", "walks_per_node", "walk_length", "window", "epochs", "batch_walkers")
                    if int(getattr(cfg, k)) < 1]
        problems += [f"{k}={getattr(cfg, k)!r} must be > 0" for k in ("p", "q")
                     if not float(getattr(cfg, k)) > 0]
        if cfg.negative < 1:
            problems.append(f"negative={cfg.negative!r} must be ≥ 1 (negative sampling)")
        if cfg.workers != "auto" and (not isinstance(cfg.workers, int) or cfg.workers < 1):
            problems.append(f"workers={cfg.workers!r} must be auto or an integer ≥ 1")
        if problems:
            raise ConfigError("model.features.node2vec: " + "; ".join(problems),
                              hint="fix the model.features.node2vec.* overrides")
        return cfg

    def hash_key(self) -> dict:
        """What changes the embeddings (thread count and walk batching do not, by design)."""
        d = asdict(self)
        d.pop("workers")
        d.pop("batch_walkers")
        return d


# ------------------------------------------------------------------------------------- graph
@dataclass
class CSRGraph:
    """Undirected simple graph: neighbours of v are indices[indptr[v]:indptr[v+1]], sorted."""

    indptr: np.ndarray  # int64 [n + 1]
    indices: np.ndarray  # int32 [2 |E|]
    _keys: np.ndarray | None = None
    _reverse: np.ndarray | None = None
    _degree: np.ndarray | None = None

    @property
    def n_nodes(self) -> int:
        return len(self.indptr) - 1

    @property
    def degree(self) -> np.ndarray:
        if self._degree is None:
            self._degree = np.diff(self.indptr)
        return self._degree

    @classmethod
    def from_edges(cls, src: np.ndarray, dst: np.ndarray, n_nodes: int) -> CSRGraph:
        """Both directions of every edge, duplicates and self-loops removed."""
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        keep = src != dst
        a = np.concatenate([src[keep], dst[keep]])
        b = np.concatenate([dst[keep], src[keep]])
        key = np.unique(a * n_nodes + b)  # sorted by (row, column): CSR order
        rows, cols = np.divmod(key, n_nodes)
        indptr = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_nodes), out=indptr[1:])
        return cls(indptr=indptr, indices=cols.astype(np.int32))

    def reverse_positions(self) -> np.ndarray:
        """rev[e] = CSR position of the reverse of the edge at position e (int64 [2 |E|])."""
        if self._reverse is None:
            rows = np.repeat(np.arange(self.n_nodes, dtype=np.int64), self.degree)
            keys = rows * self.n_nodes + self.indices  # sorted: CSR order
            self._reverse = np.searchsorted(keys, self.indices.astype(np.int64) * self.n_nodes
                                            + rows)
        return self._reverse

    def is_edge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Vectorised adjacency test (binary search in the sorted (row, column) keys)."""
        if self._keys is None:
            rows = np.repeat(np.arange(self.n_nodes, dtype=np.int64), self.degree)
            self._keys = rows * self.n_nodes + self.indices
        if len(self._keys) == 0:
            return np.zeros(len(a), dtype=bool)
        want = np.asarray(a, dtype=np.int64) * self.n_nodes + b
        pos = np.minimum(np.searchsorted(self._keys, want), len(self._keys) - 1)
        return self._keys[pos] == want


def bipartite_graph(users: np.ndarray, items: np.ndarray, n_users: int,
                    n_items: int) -> CSRGraph:
    """User–item graph with user u (1..U) as node u − 1 and item i (1..N) as node U + i − 1."""
    return CSRGraph.from_edges(np.asarray(users, np.int64) - 1,
                               n_users + np.asarray(items, np.int64) - 1, n_users + n_items)


# ------------------------------------------------------------------------------------- walks
def walk_starts(graph: CSRGraph, walks_per_node: int, rng: np.random.Generator) -> np.ndarray:
    """Every node with a neighbour, `walks_per_node` times; each round in a fresh random order
    (as the reference implementation shuffles the nodes once per round)."""
    nodes = np.flatnonzero(graph.degree > 0).astype(np.int64)
    return np.concatenate([rng.permutation(nodes) for _ in range(walks_per_node)]) \
        if len(nodes) else np.zeros(0, np.int64)


def _uniform_step(graph: CSRGraph, cur: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniform neighbour of every walker: (next nodes, their CSR positions)."""
    deg = graph.degree[cur]
    pos = graph.indptr[cur] + np.minimum((rng.random(len(cur)) * deg).astype(np.int64), deg - 1)
    return graph.indices[pos], pos


def _rejection_step(graph: CSRGraph, prev: np.ndarray, cur: np.ndarray, p: float, q: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One second-order step on a general graph, by rejection sampling: a uniform neighbour x
    is accepted with probability π(x) / max(1/p, 1, 1/q)."""
    w_return, w_out = 1.0 / p, 1.0 / q
    top = max(w_return, 1.0, w_out)
    nxt = np.empty(len(cur), dtype=graph.indices.dtype)
    pos = np.empty(len(cur), dtype=np.int64)
    pending = np.arange(len(cur))
    while len(pending):
        x, x_pos = _uniform_step(graph, cur[pending], rng)
        back = x == prev[pending]
        weight = np.where(back, w_return, np.where(graph.is_edge(prev[pending], x), 1.0, w_out))
        ok = rng.random(len(pending)) * top < weight
        nxt[pending[ok]], pos[pending[ok]] = x[ok], x_pos[ok]
        pending = pending[~ok]
    return nxt, pos


def _bipartite_step(graph: CSRGraph, back_pos: np.ndarray, cur: np.ndarray, p: float, q: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One second-order step on a bipartite graph, sampled directly: return to the previous
    node (CSR position `back_pos` in the current node's row) with probability
    (1/p) / (1/p + (deg − 1)/q), else move to one of the other deg − 1 neighbours uniformly."""
    start = graph.indptr[cur]
    deg = graph.degree[cur]
    w_return, w_out = 1.0 / p, 1.0 / q
    p_back = w_return / (w_return + (deg - 1) * w_out)
    back = rng.random(len(cur)) < p_back
    other = np.maximum(deg - 1, 1)
    j = start + np.minimum((rng.random(len(cur)) * other).astype(np.int64), other - 1)
    j += j >= back_pos  # skip the previous node's slot
    pos = np.where(back, back_pos, j)
    return graph.indices[pos], pos


def random_walks(graph: CSRGraph, starts: np.ndarray, length: int, p: float = 1.0,
                 q: float = 1.0, rng: np.random.Generator | None = None, *,
                 bipartite: bool = False, batch_walkers: int = 1_000_000) -> np.ndarray:
    """Node2Vec walks of `length` nodes from each start (which must have a neighbour).

    Returns int32 [len(starts), length]. Walkers advance together in batches of
    `batch_walkers` (bounding the per-step temporaries), one numpy loop over the steps.
    `bipartite=True` asserts that the graph is bipartite (no odd cycles: the previous node and
    the next are never adjacent), which allows the direct second-order step."""
    rng = np.random.default_rng(0) if rng is None else rng
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) and (graph.degree[starts] == 0).any():
        raise ValueError("random_walks: every start node needs a neighbour")
    walks = np.empty((len(starts), length), dtype=np.int32)
    uniform = p == 1.0 and q == 1.0
    reverse = graph.reverse_positions() if bipartite and not uniform else None
    for lo in range(0, len(starts), batch_walkers):
        cur = starts[lo:lo + batch_walkers]
        steps = np.empty((length, len(cur)), dtype=np.int32)  # step-major: contiguous writes
        steps[0] = cur
        prev = pos = None
        for step in range(1, length):
            if uniform or prev is None:
                nxt, pos = _uniform_step(graph, cur, rng)
            elif bipartite:
                nxt, pos = _bipartite_step(graph, reverse[pos], cur, p, q, rng)
            else:
                nxt, pos = _rejection_step(graph, prev, cur, p, q, rng)
            steps[step] = nxt
            prev, cur = cur, nxt
        walks[lo:lo + len(cur)] = steps.T
    return walks


# ---------------------------------------------------------------------------------- word2vec
def crc32_hash(text: str) -> int:
    """A hash that does not depend on PYTHONHASHSEED (gensim's `hashfxn`)."""
    return zlib.crc32(str(text).encode("utf-8"))


def resolve_workers(workers: int | str, deterministic: bool) -> int:
    if deterministic:
        if workers not in ("auto", 1):
            log.warning("deterministic=true: Word2Vec runs with 1 worker (model.features."
                        "node2vec.workers=%s ignored)", workers)
        return 1
    if workers == "auto":  # torch's CPU threads: `threads=1` (jobs side by side) means one
        import torch

        return max(1, torch.get_num_threads())
    return int(workers)


class _WalkCorpus:
    """Re-iterable corpus of walks as lists of node ids (converted one walk at a time, so the
    whole corpus never exists as Python objects)."""

    def __init__(self, walks: np.ndarray):
        self.walks = walks

    def __iter__(self):
        for row in self.walks:
            yield row.tolist()


def word2vec(walks: np.ndarray, n_nodes: int, cfg: Node2VecConfig, seed: int = 0,
             deterministic: bool = True) -> np.ndarray:
    """Skip-gram embeddings float32 [n_nodes, dim] of the nodes in `walks` (zeros elsewhere).

    The vocabulary is built from the node counts in node-id order (one pass over the walks is
    saved), then `epochs` passes of training."""
    from gensim.models import Word2Vec

    counts = np.bincount(walks.ravel(), minlength=n_nodes) if walks.size else \
        np.zeros(n_nodes, np.int64)
    present = np.flatnonzero(counts)
    out = np.zeros((n_nodes, cfg.dim), dtype=np.float32)
    if not len(present):
        return out
    with _quiet("gensim"):  # its per-second progress lines are noise here
        model = Word2Vec(vector_size=cfg.dim, window=cfg.window, min_count=0, sg=1, hs=0,
                         negative=cfg.negative, sample=cfg.sample, epochs=cfg.epochs,
                         workers=resolve_workers(cfg.workers, deterministic), seed=int(seed),
                         hashfxn=crc32_hash)
        model.build_vocab_from_freq({int(v): int(counts[v]) for v in present},
                                    corpus_count=len(walks))
        model.train(_WalkCorpus(walks), total_examples=len(walks), total_words=int(walks.size),
                    epochs=cfg.epochs)
    kv = model.wv
    rows = np.fromiter((kv.key_to_index[int(v)] for v in present), dtype=np.int64,
                       count=len(present))
    out[present] = kv.vectors[rows]
    return out


@contextlib.contextmanager
def _quiet(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def node2vec(graph: CSRGraph, cfg: Node2VecConfig, seed: int = 0, deterministic: bool = True,
             bipartite: bool = False, timings: dict | None = None) -> np.ndarray:
    """Node2Vec embeddings float32 [n_nodes, dim]; isolated nodes get zero vectors.

    `timings` (if given) receives the seconds spent on walks and on Word2Vec."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    starts = walk_starts(graph, cfg.walks_per_node, rng)
    walks = random_walks(graph, starts, cfg.walk_length, cfg.p, cfg.q, rng,
                         bipartite=bipartite, batch_walkers=cfg.batch_walkers)
    t1 = time.perf_counter()
    emb = word2vec(walks, graph.n_nodes, cfg, seed=seed, deterministic=deterministic)
    t2 = time.perf_counter()
    if timings is not None:
        timings.update(walks_s=t1 - t0, word2vec_s=t2 - t1, walk_steps=int(walks.size))
    log.info("node2vec: %d nodes, %d walks × %d steps in %.2fs, word2vec in %.2fs",
             graph.n_nodes, len(walks), cfg.walk_length, t1 - t0, t2 - t1)
    return emb
