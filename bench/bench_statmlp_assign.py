"""statmlp's edge-cluster assignment for full ranking: the nearest of k edge centroids for every
(user, item) pair, side by side:

  one tensor — the [B, n, k] products of all pairs and centroids at once, then argmin
               (recx at first: the arithmetic is one GEMM, the [B, n, k] memory traffic the cost);
  running    — one [B, n] product per centroid and a running maximum (recx next);
  recx       — recx.data.features.graphstats.assign_grid: the same in item blocks of 2^17
               pairs that stay in the CPU's cache, with an int16 running argmax.

Both give the same clusters (checked). Prints pairs/s, the ratio and what the whole grid of a
domain would take (default: Amazon Beauty 2014's 22,363 users × 12,102 items, k = 100, d = 64).

    python bench/bench_statmlp_assign.py [--users 1024 --items 2048 --threads 1]
"""

from __future__ import annotations

import argparse

import torch
from timing import best_time

from recx.data.features.graphstats import assign_grid


def one_tensor(ue, ie, centroids):
    c2 = (centroids * centroids).sum(1)
    b, n, k = ue.shape[0], ie.shape[0], centroids.shape[0]
    xc = (ue @ (ie[:, None, :] * centroids[None]).reshape(n * k, -1).T).view(b, n, k)
    return (c2 - 2 * xc).argmin(-1)


def running(ue, ie, centroids):
    half_c2 = (centroids * centroids).sum(1) / 2
    best = torch.full((ue.shape[0], ie.shape[0]), -torch.inf)
    arg = torch.zeros(best.shape, dtype=torch.long)
    for j in range(centroids.shape[0]):
        s = ue @ (ie * centroids[j]).T
        s -= half_c2[j]
        better = s > best
        best = torch.maximum(best, s)
        arg.masked_fill_(better, j)
    return arg



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1024, help="users per chunk (B)")
    ap.add_argument("--items", type=int, default=2048, help="items per chunk (n)")
    ap.add_argument("--k", type=int, default=100, help="edge centroids")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--domain", type=int, nargs=2, default=[22_363, 12_102],
                    metavar=("USERS", "ITEMS"), help="the grid to project the time to")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    ue = torch.randn(args.users, args.dim, generator=g)
    ie = torch.randn(args.items, args.dim, generator=g)
    cents = torch.randn(args.k, args.dim, generator=g)
    pairs = args.users * args.items
    grid = args.domain[0] * args.domain[1]
    t_old, old = best_time(lambda: one_tensor(ue, ie, cents), args.repeats)
    t_run, run = best_time(lambda: running(ue, ie, cents), args.repeats)
    t_new, new = best_time(lambda: assign_grid(ue, ie, cents, "hadamard"), args.repeats)
    same = torch.equal(old, new) and torch.equal(run, new)
    print(f"{args.users} users × {args.items} items, k={args.k}, d={args.dim}, "
          f"{args.threads} thread(s); same clusters: {same}")
    print(f"{'way':12s} {'s/chunk':>9s} {'Mpairs/s':>9s} {'whole grid':>11s}")
    for name, t in (("one tensor", t_old), ("running", t_run), ("recx", t_new)):
        print(f"{name:12s} {t:9.3f} {pairs / t / 1e6:9.2f} {grid / pairs * t / 60:9.1f} min")
    print(f"recx speed-up: {t_old / t_new:.2f}× one tensor, {t_run / t_new:.2f}× running")


if __name__ == "__main__":
    main()
