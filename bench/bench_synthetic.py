"""Benchmark of the synthetic generator's pooled path: a 1M-item, ~10M-interaction domain.

Run (after `pip install -e .`): python bench/bench_synthetic.py [--items N] [--events N]
Prints the wall and CPU seconds of the generation, the number of events and the peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from recx.data.synthetic import generate

    # mean activity of the default clipped LogNormal (median 12, sigma 0.8, [5, 200])
    rng = np.random.default_rng(0)
    acts = np.clip(np.rint(np.exp(np.log(12.0) + 0.8 * rng.standard_normal(1_000_000))), 5, 200)
    n_users = round(float(args.events / acts.mean()))
    params = {
        "seed": args.seed,
        "n_items": args.items,
        "n_users": n_users,
        "topics": list(range(32)),
    }
    t0, c0 = time.perf_counter(), time.process_time()
    raw = generate(params, "bench")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(
        f"items={args.items} users={n_users} events={len(raw.interactions)} "
        f"dropped={raw.info['dropped_events']} sampling={raw.info['sampling']}"
    )
    # cpu: this process only (wall time grows when other jobs share the cores)
    print(f"seconds={seconds:.1f} cpu_seconds={cpu:.1f} peak_rss_mib={peak_mib:.0f}")


if __name__ == "__main__":
    main()
