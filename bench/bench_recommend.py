"""Recommendations over a 1M-item catalogue: time and peak memory of `recx recommend`'s ranking.

A synthetic domain (every one of --items items has events; --users users with --events each,
Zipf-like item draws) is processed in memory, then SASRec (random weights: the cost of scoring
does not depend on them) and Pop rank every item for --score-users users through
`recx.stages.recommend.top_items`, the function the stage runs: users in chunks of at most
`eval.max_scores` scores, the user's history masked (the domain keeps no repeats), the exact
top-k per chunk. Printed: wall time, users/s, the peak RSS while ranking (sampled every 5 ms)
next to the RSS before it, and the size of the score matrix that is never held.

    python bench/bench_recommend.py                       # 1M items, 5,000 users ranked
    python bench/bench_recommend.py --items 100000 --score-users 2000
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import pandas as pd
import torch


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """The largest RSS seen while the block runs (a sampling thread)."""

    def __enter__(self):
        self.peak, self._stop = rss_mib(), threading.Event()

        def watch():
            while not self._stop.wait(0.005):
                self.peak = max(self.peak, rss_mib())

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def synthetic_domain(n_items: int, n_users: int, events: int, seed: int = 0):
    from recx.data.domain import domain_from_frame

    rng = np.random.default_rng(seed)
    total = n_users * events
    if total < n_items:
        raise SystemExit(f"--users × --events = {total} < --items: not every item has events")
    # every item once (so the catalogue has them all), the rest drawn Zipf-like
    items = np.concatenate([rng.permutation(n_items),
                            np.minimum(rng.zipf(1.3, total - n_items) - 1, n_items - 1)])
    rng.shuffle(items)
    frame = pd.DataFrame({"user": np.repeat(np.arange(n_users), events), "item": items,
                          "ts": 1_600_000_000 + np.tile(np.arange(events, dtype=np.int64),
                                                        n_users)})
    return domain_from_frame(frame, "synthetic_1m", dedup="earliest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=60_000)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--score-users", type=int, default=5_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-scores", type=int, default=50_000_000, help="eval.max_scores")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("recx").setLevel(logging.ERROR)  # the dedup note on random draws

    import recx
    from recx.models.registry import build_model
    from recx.stages.recommend import _plain, _single, top_items

    t0 = time.perf_counter()
    domain = synthetic_domain(args.items, args.users, args.events)
    print(f"domain: {domain.n_users} users, {domain.n_items} items, {domain.n_events} events "
          f"(built in {time.perf_counter() - t0:.1f} s); repeat-free: {domain.repeat_free}; "
          f"torch threads {torch.get_num_threads()}")
    users = np.arange(1, min(args.score_users, domain.n_users) + 1)
    dense_gb = len(users) * (domain.n_items + 1) * 4 / 1e9
    print(f"ranking {len(users)} users × {domain.n_items + 1} scores: the dense matrix would be "
          f"{dense_gb:.1f} GB; chunks hold at most {args.max_scores * 4 / 1e6:.0f} MB per "
          "score row")
    cfg = recx.compose("recommend", ["model=sasrec", "dataset=tiny"])
    for name in ("sasrec", "pop"):
        model_cfg = cfg.model if name == "sasrec" else recx.compose(
            "recommend", ["model=pop", "dataset=tiny"]).model
        torch.manual_seed(0)
        model = build_model(model_cfg, n_items=domain.n_items).eval()
        model.fit_inputs(domain)
        before = rss_mib()
        with PeakRSS() as peak:
            t0 = time.perf_counter()
            vals, ids = top_items(domain, _single(model), users, args.k,
                                  mask_history=domain.repeat_free,
                                  max_len=getattr(model, "max_len", 50), combine=_plain,
                                  max_scores=args.max_scores)
            wall = time.perf_counter() - t0
        seen = [set(domain.item[domain.indptr[u]:domain.indptr[u + 1]].tolist())
                for u in users[:100]]
        clean = all(not (set(row.tolist()) & s) for row, s in zip(ids[:100], seen, strict=True))
        ordered = bool((np.diff(vals, axis=1) <= 0).all())
        print(f"{name:<7} {wall:8.1f} s  {len(users) / wall:8.0f} users/s  RSS before "
              f"{before:7.0f} MiB, peak while ranking {peak.peak:7.0f} MiB "
              f"(+{peak.peak - before:.0f})  no history item in the lists: {clean}, "
              f"scores non-increasing: {ordered}")


if __name__ == "__main__":
    main()
