"""Benchmark: Node2Vec random walks, and statmlp's feature time on a real data set.

1. Walk steps per second on a bipartite user–item graph of ~1M distinct edges (heavy-tailed
   degrees), for p = q = 1 and for a biased setting (p = 0.5, q = 2):
   - recx: `recx.data.features.node2vec.random_walks`, vectorised over all walkers (numpy), with
     the direct bipartite second-order step, and with the general rejection step (which does not
     know the graph is bipartite);
   - a plain Python walker, one step at a time (uniform choice, or the Node2Vec weights of every
     neighbour computed at each step and `random.choices`), timed on a subset of the walks;
   - pecanpy (Liu & Krishnan 2021; numba, parallel): `FirstOrderUnweighted` for p = q = 1 and
     `SparseOTF` otherwise, if it is importable here or in `--pecanpy-python` (a separate
     environment: pecanpy pins numpy < 2). Its steady-state walk time (after numba compilation)
     and its end-to-end `simulate_walks` (compilation and node-id strings included) are reported.
   The slow biased walkers (recx's rejection step, pecanpy's SparseOTF, which weighs every
   neighbour at every step) are timed on `--max-walkers` walks (SparseOTF end to end: one walk
   per node).
   A step is one transition: walks × (length − 1). Goal: ≥ 2M steps/s on 2 cores.
2. statmlp's feature time (degrees, Node2Vec walks, Word2Vec, node k-means, edge k-means) on
   Yelp-A (316k interactions) when `--yelp-dir` (default ../shared/datasets/
   yelp2020_ticoserec_yelpA) exists, with the default config of conf/model/statmlp.yaml.

Run: python bench/bench_node2vec.py [--edges 1e6] [--pecanpy-python <venv>/bin/python]
                                    [--yelp-dir <folder>] [--out outputs/bench/node2vec]
Prints one table with the ratios and writes node2vec_walks.{csv,png}. Timings on a shared
machine are noisy: the best of `--repeat` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import best_time

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ graph
def bipartite_edges(n_edges: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int, int]:
    """~n_edges distinct (user, item) pairs: log-normal user activity, Zipf-like item appeal."""
    rng = np.random.default_rng(seed)
    n_users, n_items = max(10, n_edges // 10), max(10, n_edges // 20)
    act = rng.lognormal(0.0, 1.0, n_users)
    appeal = 1.0 / np.arange(1, n_items + 1) ** 0.8
    m = int(n_edges * 1.08)  # a few duplicates are dropped below
    u = rng.choice(n_users, size=m, p=act / act.sum())
    i = rng.choice(n_items, size=m, p=appeal / appeal.sum())
    key = np.unique(u.astype(np.int64) * n_items + i)[:n_edges]
    return key // n_items + 1, key % n_items + 1, n_users, n_items


# ----------------------------------------------------------------------------- plain Python
def python_walks(indptr, indices, starts, length, p, q, seed=0) -> list[list[int]]:
    """One walker and one step at a time: the straightforward Node2Vec walk."""
    rnd = random.Random(seed)
    nbrs = [indices[indptr[v]:indptr[v + 1]].tolist() for v in range(len(indptr) - 1)]
    sets = [set(n) for n in nbrs] if (p, q) != (1.0, 1.0) else None
    out = []
    for s in starts.tolist():
        walk, prev, cur = [s], None, s
        for _ in range(length - 1):
            nb = nbrs[cur]
            if prev is None or sets is None:
                nxt = nb[int(rnd.random() * len(nb))]
            else:
                ps = sets[prev]
                w = [1.0 / p if x == prev else (1.0 if x in ps else 1.0 / q) for x in nb]
                nxt = rnd.choices(nb, weights=w)[0]
            walk.append(nxt)
            prev, cur = cur, nxt
        out.append(walk)
    return out


# ---------------------------------------------------------------------------------- pecanpy
def pecanpy_worker(path: str, p: float, q: float, walks_per_node: int, length: int,
                   max_walkers: int) -> dict:
    """Time pecanpy on the CSR graph in `path` (run in pecanpy's own environment). Biased
    walks (SparseOTF computes every neighbour's weight at every step) are timed on one walk per
    node end to end, and on at most `max_walkers` walks in steady state."""
    from numba_progress import ProgressBar
    from pecanpy import pecanpy as pp

    uniform = (p, q) == (1.0, 1.0)
    cls = pp.FirstOrderUnweighted if uniform else pp.SparseOTF
    g = cls(p=p, q=q, workers=os.cpu_count() or 1, random_state=0)
    g.read_npz(path, weighted=False, implicit_ids=True)
    t0 = time.perf_counter()
    # numba compilation + node-id strings included
    walks = g.simulate_walks(walks_per_node if uniform else 1, length)
    end_to_end = time.perf_counter() - t0
    n_steps = sum(len(w) - 1 for w in walks)
    del walks
    # steady state: the compiled walk kernel alone
    g._preprocess_transition_probs()
    starts = np.concatenate([np.arange(g.num_nodes, dtype=np.uint32)] * walks_per_node)
    np.random.default_rng(0).shuffle(starts)
    if not uniform:
        starts = starts[:max_walkers]
    move, has = g.get_move_forward(), g.get_has_nbrs()
    with ProgressBar(total=len(starts), disable=True) as bar:
        g._random_walks(64, length, 0, starts[:64], has, move, bar)  # compile
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            mat = g._random_walks(len(starts), length, 0, starts, has, move, bar)
            best = min(best, time.perf_counter() - t0)
    steady = int((mat[:, -1].astype(np.int64) - 1).sum())
    return {"mode": cls.__name__, "end_to_end_s": end_to_end, "end_to_end_steps": n_steps,
            "steady_s": best, "steady_steps": steady, "steady_walks": len(starts)}


def run_pecanpy(python: str | None, graph, p, q, walks_per_node, length,
                max_walkers) -> dict | None:
    try:
        if python is None:
            import pecanpy  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.npz"
        np.savez(path, indptr=graph.indptr, indices=graph.indices,
                 data=np.ones(len(graph.indices), np.float32))
        if python is None:
            return pecanpy_worker(str(path), p, q, walks_per_node, length, max_walkers)
        cmd = [python, __file__, "--pecanpy-worker", str(path), "--p", str(p), "--q", str(q),
               "--walks-per-node", str(walks_per_node), "--length", str(length),
               "--max-walkers", str(max_walkers)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if res.returncode != 0:
            print(f"pecanpy failed: {res.stderr[-2000:]}")
            return None
        return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ benchmarks
def walk_rows(args) -> list[dict]:
    from recx.data.features.node2vec import bipartite_graph, random_walks, walk_starts

    eu, ei, n_users, n_items = bipartite_edges(int(args.edges))
    graph = bipartite_graph(eu, ei, n_users, n_items)
    deg = graph.degree
    print(f"graph: {n_users:,} users, {n_items:,} items, {len(eu):,} distinct edges; "
          f"max degree {deg.max():,}, mean {deg[deg > 0].mean():.1f}")
    starts = walk_starts(graph, args.walks_per_node, np.random.default_rng(0))
    steps_full = len(starts) * (args.length - 1)
    sub = starts[:args.python_walks]
    rows = []
    for p, q in ((1.0, 1.0), (0.5, 2.0)):
        setting = f"p={p:g}, q={q:g}"

        def vec(bip, s=starts, p=p, q=q):
            random_walks(graph, s, args.length, p, q, np.random.default_rng(1), bipartite=bip)

        t = best_time(lambda: vec(True), args.repeat, warmup=False)[0]
        rows.append({"setting": setting, "walker": "recx vectorised (bipartite step)",
                     "steps": steps_full, "seconds": t})
        if (p, q) != (1.0, 1.0):
            few = starts[:args.max_walkers]
            t = best_time(lambda few=few: vec(False, few), args.repeat, warmup=False)[0]
            rows.append({"setting": setting,
                         "walker": f"recx vectorised (rejection step, {len(few):,} walks)",
                         "steps": len(few) * (args.length - 1), "seconds": t})
        t = best_time(lambda s=sub, p=p, q=q: python_walks(graph.indptr, graph.indices, s,
                                                           args.length, p, q), 1, warmup=False)[0]
        rows.append({"setting": setting, "walker": f"plain Python ({len(sub):,} walks)",
                     "steps": len(sub) * (args.length - 1), "seconds": t})
        pec = None if args.no_pecanpy else run_pecanpy(args.pecanpy_python, graph, p, q,
                                                       args.walks_per_node, args.length,
                                                       args.max_walkers)
        if pec is None:
            print(f"{setting}: pecanpy not available (pip install pecanpy, or "
                  "--pecanpy-python <its python>)")
        else:
            rows.append({"setting": setting,
                         "walker": f"pecanpy {pec['mode']} (walk kernel, "
                                   f"{pec['steady_walks']:,} walks)",
                         "steps": pec["steady_steps"], "seconds": pec["steady_s"]})
            rows.append({"setting": setting,
                         "walker": f"pecanpy {pec['mode']} (simulate_walks "
                                   f"{'×' + str(args.walks_per_node) if p == q == 1 else '×1'}"
                                   ", with JIT + str ids)",
                         "steps": pec["end_to_end_steps"], "seconds": pec["end_to_end_s"]})
    for r in rows:
        r["steps_per_s"] = r["steps"] / r["seconds"]
    for setting in {r["setting"] for r in rows}:
        group = [r for r in rows if r["setting"] == setting]
        py = next(r for r in group if r["walker"].startswith("plain"))["steps_per_s"]
        rv = group[0]["steps_per_s"]
        for r in group:
            r["vs_python"] = r["steps_per_s"] / py
            r["recx_vs_this"] = rv / r["steps_per_s"]
    return rows


def yelp_features(args) -> dict | None:
    if args.yelp_dir is None or not Path(args.yelp_dir).is_dir():
        print(f"Yelp-A feature time skipped: {args.yelp_dir} not found (--yelp-dir)")
        return None
    from hydra import compose, initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas
    from recx.data.domain import load_domain
    from recx.data.features.graphstats import GraphStatsConfig, build_graph_stats
    from recx.data.features.node2vec import resolve_workers

    register_resolvers()
    register_schemas()
    register_aliases([REPO / "conf"])
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", ["model=statmlp", "dataset=yelp_a",
                                f"dataset.raw_dir={args.yelp_dir}",
                                f"paths.root={args.out}"])
    domain = load_domain(cfg.dataset, cfg.eval, cfg.paths)
    features = {k: v for k, v in dict(cfg.model.features).items() if k != "fields"}
    gcfg = GraphStatsConfig.from_dict(features)
    t0 = time.perf_counter()
    stats = build_graph_stats(domain, gcfg, seed=0, deterministic=False)
    total = time.perf_counter() - t0
    t = stats.timings
    return {"dataset": "yelp_a", "users": domain.n_users, "items": domain.n_items,
            "interactions": domain.n_events, "training_edges": len(stats.edge_u),
            "walk_steps": t["walk_steps"], "word2vec_workers": resolve_workers("auto", False),
            "node_clusters": stats.n_node_clusters, "edge_clusters": stats.n_edge_clusters,
            **{k: round(v, 2) for k, v in t.items() if k.endswith("_s")},
            "total_s": round(total, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edges", type=float, default=1e6)
    ap.add_argument("--walks-per-node", type=int, default=10)
    ap.add_argument("--length", type=int, default=80)
    ap.add_argument("--python-walks", type=int, default=3000,
                    help="walks timed for the plain Python walker")
    ap.add_argument("--max-walkers", type=int, default=150_000,
                    help="walks timed for the slow biased walkers (recx rejection, pecanpy)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--pecanpy-python", default=None,
                    help="python of an environment with pecanpy (default: this one)")
    ap.add_argument("--no-pecanpy", action="store_true")
    ap.add_argument("--yelp-dir", default=str(REPO.parent / "shared" / "datasets"
                                              / "yelp2020_ticoserec_yelpA"))
    ap.add_argument("--skip-walks", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("outputs/bench/node2vec"))
    ap.add_argument("--pecanpy-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--p", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--q", type=float, default=1.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pecanpy_worker:  # inside pecanpy's environment: time it, print JSON, nothing else
        print(json.dumps(pecanpy_worker(args.pecanpy_worker, args.p, args.q,
                                        args.walks_per_node, args.length, args.max_walkers)))
        return

    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    print(f"cpus available: {len(os.sched_getaffinity(0))}, load average "
          f"{os.getloadavg()[0]:.1f} (timings on a shared machine are noisy)")
    if not args.skip_walks:
        rows = walk_rows(args)
        frame = pd.DataFrame(rows)
        show = frame.assign(steps_per_s=frame["steps_per_s"].map(lambda v: f"{v / 1e6:.3f}M"),
                            seconds=frame["seconds"].round(3),
                            vs_python=frame["vs_python"].map(lambda v: f"{v:.1f}×"),
                            recx_vs_this=frame["recx_vs_this"].map(lambda v: f"{v:.2f}×"))
        print(show.to_string(index=False))
        frame.to_csv(args.out / "node2vec_walks.csv", index=False)
        _plot(frame, args.out / "node2vec_walks.png")
    feats = yelp_features(args)
    if feats is not None:
        print("statmlp features on Yelp-A:", json.dumps(feats, indent=1))
        (args.out / "yelp_a_features.json").write_text(json.dumps(feats, indent=1))


def _plot(frame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(frame) + 1.2))
    labels = [f"{s} — {w}" for s, w in zip(frame["setting"], frame["walker"], strict=True)]
    ax.barh(range(len(frame)), frame["steps_per_s"], color="C0")
    ax.set_yticks(range(len(frame)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.axvline(2e6, color="grey", ls="--", lw=0.8, label="goal 2M steps/s")
    ax.set_xlabel("walk steps per second (log)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
