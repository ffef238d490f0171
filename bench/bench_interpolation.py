"""Ranking the targets under every blend of an interpolation's α grid, side by side:

  materialised — `blender`'s [A, B, C] blends, then the target's count per blend (recx before:
                 21 × the scores in memory, so the evaluator took 1/21 of the users per batch,
                 and every operation a pass through memory);
  recx         — `Blend.counts`: each blend formed block by block in buffers that stay in cache,
                 only the counts kept; the batch is that of scoring two models.

Each way runs at the user batch the evaluator gives it under `eval=full` (max_scores 5·10⁷,
batch_users 1,024). Default sizes are Amazon Sports 2014's (18,357 items); zscore
normalisation, the default α grid (21 points), 0.1 % of the candidates masked. Prints users/s,
the ratio, and whether the counts are identical.

    python bench/bench_interpolation.py [--items 18357 --threads 1]
"""

from __future__ import annotations

import argparse

import torch
from timing import best_time

from recx.eval.interpolation import Blend, blender

ALPHAS = [i / 20 for i in range(21)]
MAX_SCORES, BATCH_USERS = 50_000_000, 1024


def scores(users: int, items: int, g: torch.Generator):
    s = torch.randn(2, users, items + 1, generator=g)
    masked = torch.rand(users, items + 1, generator=g) < 0.001
    masked[:, 0] = True  # the padding column
    tcol = torch.randint(1, items + 1, (users,), generator=g)
    masked[torch.arange(users), tcol] = False
    return s.masked_fill(masked, -torch.inf), masked, tcol


def materialised(s, masked, tcol):
    out = blender(ALPHAS, "zscore")(s, masked)
    own = out[:, torch.arange(out.shape[1]), tcol].unsqueeze(-1)
    return (out >= own).sum(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=18_357)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    width = args.items + 1
    b_old = max(1, min(BATCH_USERS, MAX_SCORES // (width * len(ALPHAS))))
    b_new = max(1, min(BATCH_USERS, MAX_SCORES // (width * 2)))
    blend = Blend(ALPHAS, "zscore")
    s, masked, tcol = scores(b_new, args.items, g)
    with torch.no_grad():
        t_old, old = best_time(lambda: materialised(s[:, :b_old], masked[:b_old], tcol[:b_old]),
                               args.repeats)
        t_new, new = best_time(lambda: blend.counts(s, masked, tcol, False), args.repeats)
    same = torch.equal(old, new[:, :b_old])
    print(f"{args.items:,} items, {len(ALPHAS)} α, {args.threads} thread(s); "
          f"identical counts: {same}")
    print(f"{'way':13s} {'users/batch':>11s} {'s/batch':>8s} {'users/s':>8s}")
    for name, b, t in (("materialised", b_old, t_old), ("recx", b_new, t_new)):
        print(f"{name:13s} {b:11d} {t:8.3f} {b / t:8.0f}")
    print(f"recx speed-up: {(b_new / t_new) / (b_old / t_old):.2f}×")


if __name__ == "__main__":
    main()
