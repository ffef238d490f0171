"""Preprocessing throughput and memory: a synthetic 10M-interaction CSV and JSON-lines file,
from the raw file to the cached canonical parquet (read → dedup → 5-core → remap → sort → split
→ parquet, plus the sha256 of the raw file that keys the cache).

    python bench/bench_preprocess.py [--events 10000000] [--workdir /tmp/recx-bench]

The files are generated once into `--workdir` (Amazon-like string ids: 14-character reviewer ids,
10-character ASINs; ratings; unix times; the JSON lines also carry a short review summary that the
reader must skip). Each format is preprocessed in a fresh subprocess, whose peak RSS
(`ru_maxrss`) is reported next to the RSS right after its imports and the size of the canonical
output (in memory: user int32, item int32, ts int64, split int8, rating float32; and on disk).
Goal (issue): ≥ 1M interactions/s on 2 cores; peak memory < 3× the canonical output.
The rate is taken on wall time: reading and sorting use both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ data
def _ids(rng, n: int, prefix: str, width: int):
    import numpy as np

    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    body = alphabet[rng.integers(0, 36, (n, width))]
    return np.array([prefix + "".join(r) for r in body], dtype=object)


def generate(workdir: Path, n_events: int, seed: int = 0) -> dict[str, Path]:
    """Write bench_<n>.csv and bench_<n>.jsonl (the same events) unless they exist.

    Shaped like a 5-core review file: users with at least 5 events (LogNormal activity, median
    about 14), items with LogNormal popularity (a long tail, few items under 5 events), almost no
    repeated (user, item) pairs; rows in random order (the worst case for the final sort).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    workdir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = workdir / f"bench_{n_events}.csv", workdir / f"bench_{n_events}.jsonl"
    if csv_path.exists() and json_path.exists():
        return {"csv": csv_path, "jsonl": json_path}
    rng = np.random.default_rng(seed)
    n_users, n_items = max(10, n_events // 20), max(10, n_events // 50)
    act = np.clip(np.exp(np.log(14) + 0.9 * rng.standard_normal(n_users)), 5, 2000)
    act = np.maximum(5, np.round(act * n_events / act.sum())).astype(np.int64)
    act[-1] = max(5, act[-1] + n_events - act.sum())
    user = rng.permutation(np.repeat(np.arange(n_users, dtype=np.int64), act))[:n_events]
    weight = np.exp(1.0 * rng.standard_normal(n_items))
    item = np.searchsorted(np.cumsum(weight / weight.sum()), rng.random(n_events))
    item = np.minimum(item, n_items - 1)
    users = pa.array(_ids(rng, n_users, "A", 13))
    items = pa.array(_ids(rng, n_items, "B0", 8))
    t0 = 1_262_304_000  # 2010-01-01
    chunk = 1_000_000
    with open(json_path, "w") as jf:
        writer = None
        for start in range(0, n_events, chunk):
            sl = slice(start, min(n_events, start + chunk))
            n = sl.stop - sl.start
            ts = t0 + rng.integers(0, 8 * 365 * 86400, n)
            rating = rng.integers(1, 6, n).astype(np.float64)
            table = pa.table({"user": users.take(pa.array(user[sl])),
                              "item": items.take(pa.array(item[sl])),
                              "rating": rating, "timestamp": ts})
            if writer is None:
                writer = pacsv.CSVWriter(csv_path, table.schema)
            writer.write_table(table)
            lines = [f'{{"reviewerID": "{a}", "asin": "{b}", "overall": {r}, '
                     f'"unixReviewTime": {t}, "summary": "Five stars, would buy again"}}'
                     for a, b, r, t in zip(table["user"].to_pylist(), table["item"].to_pylist(),
                                           rating.tolist(), ts.tolist(), strict=True)]
            jf.write("\n".join(lines) + "\n")
        writer.close()
    return {"csv": csv_path, "jsonl": json_path}


# ------------------------------------------------------------------------------ child
def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(fmt: str, path: Path, workdir: Path) -> None:
    """Preprocess one file through `load_domain` (the cache path of `recx preprocess`)."""
    import shutil

    import numpy as np

    sys.path.insert(0, str(REPO))
    from hydra import compose, initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas
    from recx.data.domain import load_domain

    register_resolvers()
    register_schemas()
    register_aliases([REPO / "conf"])
    root = workdir / f"root_{fmt}"
    shutil.rmtree(root, ignore_errors=True)
    if fmt == "csv":
        cols = ["dataset.columns.user=user", "dataset.columns.item=item",
                "dataset.columns.timestamp=timestamp", "dataset.columns.rating=rating"]
    else:
        cols = ["dataset.columns.user=reviewerID", "dataset.columns.item=asin",
                "dataset.columns.timestamp=unixReviewTime", "dataset.columns.rating=overall"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="preprocess",
                      overrides=["dataset=custom", f"dataset.path={path}", *cols,
                                 f"paths.root={root}"])
    import pandas as pd  # noqa: F401 - imported before the baseline is taken
    import pyarrow  # noqa: F401

    base = _rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    domain = load_domain(cfg.dataset, cfg.eval, cfg.paths, offline=True)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB on Linux
    parquet = domain.path / "interactions.parquet"
    stats = domain.stats
    n_out = stats["interactions"]
    canon = n_out * (4 + 4 + 8 + 1 + 4) / 2**20  # user, item, ts, split, rating
    print(json.dumps({
        "format": fmt, "raw_mib": path.stat().st_size / 2**20,
        "read": stats["filters"]["read"]["interactions"], "out": n_out,
        "users": stats["users"], "items": stats["items"], "seconds": seconds, "cpu": cpu,
        "rate": stats["filters"]["read"]["interactions"] / seconds,
        "rss_base_mib": base, "rss_peak_mib": peak, "canonical_mib": canon,
        "parquet_mib": parquet.stat().st_size / 2**20, "cpus": os.cpu_count(),
        "ok": bool(np.all(np.diff(domain.indptr) >= 0)),
    }))


# ------------------------------------------------------------------------------ parent
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/recx-bench"))
    ap.add_argument("--formats", default="csv,jsonl")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.workdir)
        return
    t0 = time.perf_counter()
    paths = generate(args.workdir, args.events)
    print(f"data: {args.workdir} ({time.perf_counter() - t0:.0f} s to generate or find)")
    rows = []
    for fmt in args.formats.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", fmt, "--path",
                              str(paths[fmt]), "--workdir", str(args.workdir)],
                             capture_output=True, text=True, env={**os.environ,
                                                                  "PYTHONPATH": str(REPO)})
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(out.returncode)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    head = ("| format | raw file | interactions read → kept | wall (CPU) time | "
            "interactions/s wall (CPU) | "
            "RSS after imports | peak RSS | canonical (memory / parquet) | peak / canonical | "
            "(peak − imports) / canonical |")
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['format']} | {r['raw_mib']:.0f} MiB | {r['read']:,} → {r['out']:,} | "
              f"{r['seconds']:.1f} s ({r['cpu']:.1f} s) | {r['rate'] / 1e6:.2f} M "
              f"({r['read'] / r['cpu'] / 1e6:.2f} M) | {r['rss_base_mib']:.0f} MiB | "
              f"{r['rss_peak_mib']:.0f} MiB | {r['canonical_mib']:.0f} / {r['parquet_mib']:.0f} "
              f"MiB | {r['rss_peak_mib'] / r['canonical_mib']:.2f}× | "
              f"{(r['rss_peak_mib'] - r['rss_base_mib']) / r['canonical_mib']:.2f}× |")
    print(f"({rows[0]['cpus']} CPUs visible; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
