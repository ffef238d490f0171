"""Benchmark: PrepRec popularity features and PrepRec training throughput.

1. Features (`recx.data.features.popularity.build_popularity`) on synthetic domains of up to 10M
   interactions, side by side with a plain pandas implementation (groupby → dense unstack →
   shifted decay sums / rolling window → row-wise `rank(method="average")`); both produce the same
   tables (checked). Goal: ≥ 5M interactions/s on 2 cores.
2. Training throughput (sequences/s: users per step × steps / s, forward + backward + Adam) of
   PrepRec against SASRec on the same synthetic domain, each with its own batches.

Run: python bench/bench_preprec_features.py [--sizes 1e6 3e6 1e7] [--out outputs/bench/preprec]
Prints one row per measurement with the ratios, and writes preprec_features.{png,pdf,csv}.
Timings on a shared machine are noisy: the best of `--repeat` runs is reported.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timing import best_time

from recx.data.domain import DomainData
from recx.data.features.popularity import (
    PopularityConfig,
    build_popularity,
    dense_periods,
    raw_periods,
)
from recx.data.scenarios import leave_one_out

DAY = 86400


def synthetic_domain(n_events: int, n_items: int, span_days: float, seed: int = 0,
                     events_per_user: int = 20, life_days: float = 60.0) -> DomainData:
    """Items with a release time and a gamma-shaped life cycle, Zipf-like appeal; users with
    ~`events_per_user` events. Only (user, item, ts, split) matter for the features."""
    rng = np.random.default_rng(seed)
    release = rng.uniform(-life_days, span_days, n_items)
    appeal = 1.0 / np.arange(1, n_items + 1) ** 0.8
    item = rng.choice(n_items, size=n_events, p=appeal / appeal.sum())
    t = release[item] + rng.gamma(2.0, life_days / 2, n_events)
    t = np.clip(t, 0, span_days)
    n_users = max(1, n_events // events_per_user)
    user = rng.integers(1, n_users + 1, n_events)
    ts = (1_500_000_000 + t * DAY).astype(np.int64)
    order = np.lexsort((ts, user))
    user, item, ts = user[order], item[order] + 1, ts[order]
    indptr = np.zeros(n_users + 2, np.int64)
    indptr[1:] = np.cumsum(np.bincount(user, minlength=n_users + 1))
    frame = pd.DataFrame({"user": user, "item": item, "ts": ts,
                          "split": leave_one_out(indptr, ts)})
    return DomainData.from_frames("bench", f"bench-{n_events}-{seed}", frame, n_users, n_items)


def pandas_tables(domain, cfg: PopularityConfig):
    """The reference: the same tables with pandas groupby / rolling / rank, dense frames."""
    t0 = int(domain.ts.min())
    p, _ = dense_periods(raw_periods(domain.ts, cfg.coarse_days, t0), cfg.skip_empty_periods)
    f, _ = dense_periods(raw_periods(domain.ts, cfg.fine_days, t0), cfg.skip_empty_periods)
    df = pd.DataFrame({"item": domain.item, "P": p, "F": f})
    items = pd.RangeIndex(1, domain.n_items + 1)

    def counts(col, n):
        return (df.groupby([col, "item"]).size().unstack(fill_value=0)
                .reindex(index=pd.RangeIndex(n), columns=items, fill_value=0))

    def perc(frame):
        frame = frame.where(frame > 0)
        return frame.rank(axis=1, method="average").div(frame.count(axis=1), axis=0) \
            .mul(100).fillna(0.0)

    n_c = counts("P", int(p.max()) + 1).astype(float)
    decayed = sum(n_c.shift(k, fill_value=0.0) * cfg.coarse_decay ** k
                  for k in range(cfg.coarse_truncate))
    n_f = counts("F", int(f.max()) + 1)
    window = n_f.rolling(cfg.fine_window, min_periods=1).sum()
    return perc(decayed).to_numpy(np.float32), perc(window).to_numpy(np.float32)


def bench_features(sizes, repeat, pandas_max):
    cfg = PopularityConfig()
    rows = []
    for n in sizes:
        d = synthetic_domain(n, n_items=max(1000, n // 100), span_days=3 * 365)
        sec, tables = best_time(lambda d=d: build_popularity(d, cfg), repeat, warmup=False)
        row = {"interactions": n, "items": d.n_items, "coarse_periods": tables.n_coarse,
               "fine_periods": tables.n_fine, "recx_s": sec, "recx_per_s": n / sec}
        if n <= pandas_max:
            psec, (pc, pf) = best_time(lambda d=d: pandas_tables(d, cfg), 1, warmup=False)
            h = cfg.coarse_history
            assert np.allclose(tables.coarse[h:, 1:], pc, rtol=1e-5), "coarse tables differ"
            assert np.allclose(tables.fine[1:, 1:], pf, rtol=1e-5), "fine tables differ"
            row.update(pandas_s=psec, pandas_per_s=n / psec, speedup=psec / sec)
        rows.append(row)
        print(" ".join(f"{k}={v:,.3g}" if isinstance(v, float) else f"{k}={v:,}"
                       for k, v in row.items()), flush=True)
    return pd.DataFrame(rows)


def bench_training(n_users: int, steps: int, threads: int):
    """Sequences/s on two domains: short histories (~20 events per user: PrepRec's batches are
    trimmed to the longest history, SASRec's windows are always max_len wide) and long ones
    (~250 events per user: every window is full)."""
    from recx.models.registry import build_model, model_config
    from recx.train.loop import make_optimizer

    torch.set_num_threads(threads)
    rows = []
    for label, per_user in (("short (~20 events/user)", 20), ("long (~250 events/user)", 250)):
        d = synthetic_domain(n_users * per_user, n_items=5000, span_days=2 * 365,
                             events_per_user=per_user, seed=1)
        users = d.train_users()
        variants = {
            "preprec (paper config, max_len 200)": lambda: build_model(model_config("preprec")),
            "sasrec (recx default: max_len 50, CE)": lambda d=d: build_model(
                model_config("sasrec"), d.n_items),
            "sasrec (max_len 200, bce_1neg)": lambda d=d: build_model(
                model_config("sasrec", max_len=200, optim={"loss": "bce_1neg"}), d.n_items),
        }
        for name, make in variants.items():
            torch.manual_seed(0)
            model = make()
            model.fit_inputs(d)
            opt = make_optimizer(model, model.optim)
            model.train()
            batches = iter(model.train_batches(d, np.random.default_rng(0), users))
            seqs, sec = 0, 0.0
            for step in range(steps + 2):
                batch = next(batches)
                t = time.perf_counter()
                opt.zero_grad()
                model.loss(batch).backward()
                opt.step()
                if step >= 2:  # warm-up
                    sec += time.perf_counter() - t
                    seqs += int(next(v for v in batch.values() if torch.is_tensor(v)).shape[0])
            rows.append({"domain": label, "model": name, "sequences_per_s": seqs / sec,
                         "params": sum(p.numel() for p in model.parameters())})
    out = pd.DataFrame(rows)
    first = out.groupby("domain")["sequences_per_s"].transform("first")
    out["vs_preprec"] = out["sequences_per_s"] / first
    print(f"training throughput ({n_users} users, {threads} threads; batches built outside "
          "the timer, forward + backward + Adam inside):")
    print(out.to_string(index=False))
    return out


def figure(feat: pd.DataFrame, train: pd.DataFrame, out: Path) -> None:
    from recx.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    ax.plot(feat["interactions"], feat["recx_per_s"], "-o", label="recx (numpy, vectorised)")
    if "pandas_per_s" in feat:
        sub = feat.dropna(subset=["pandas_per_s"])
        ax.plot(sub["interactions"], sub["pandas_per_s"], "-s", label="pandas groupby + rank")
    ax.axhline(5e6, color="grey", ls=":", label="goal 5M / s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("interactions")
    ax.set_ylabel("interactions / s")
    ax.set_title("PrepRec popularity tables", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    labels = train["domain"].str.split(" ").str[0] + ": " + train["model"]
    ax.barh(labels, train["sequences_per_s"])
    ax.bar_label(ax.containers[0], fmt="%.0f", fontsize=7)
    ax.set_xlabel("training sequences / s")
    ax.set_title("training throughput (CPU)", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    table = pd.concat([feat.assign(kind="features"), train.assign(kind="training")])
    save_figure(fig, out / "preprec_features", table)
    print(f"figure: {out / 'preprec_features.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e6, 3e6, 1e7])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pandas-max", type=float, default=1e7, help="largest size for pandas")
    ap.add_argument("--train-users", type=int, default=5000)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("outputs/bench/preprec"))
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    feat = bench_features([int(s) for s in args.sizes], args.repeat, args.pandas_max)
    train = pd.DataFrame() if args.skip_training else bench_training(
        args.train_users, args.train_steps, args.threads)
    if not train.empty:
        figure(feat, train, args.out)


if __name__ == "__main__":
    main()
