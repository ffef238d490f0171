"""What counting the other candidate set costs: full ranking of one split with the domain's
policy only (`eval.mask_variants=policy`) and with both rules from the same scores (`both`, the
default), side by side.

A plain model's masked count is the unmasked count minus the history items above the target, so
the second rule costs one gather over the history. A blend (interpolation) is normalised over
the policy's candidates; the other rule ranks the same blended values, so it too costs a gather
of the history items' blends, with the rows' normalisation statistics kept from the policy's
count (`norm=rank` alone counts each rule on its own). Scorers: a dot product of 64-d user and item
vectors (the last layer of SASRec-like models) and the blend of two of them over a 21-point α
grid. The domain is synthetic, sized like Amazon Sports 2014 by default (18,357 items, users
with 9 events, no repeats: the policy masks the history).

    python bench/bench_candidate_sets.py [--items 18357 --users 4096 --threads 1]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from timing import best_time

from recx.config.schema import EvalSchema
from recx.data.domain import domain_from_frame
from recx.eval.evaluator import Evaluator
from recx.eval.interpolation import Blend

ALPHAS = [i / 20 for i in range(21)]


def synthetic_domain(users: int, items: int, per_user: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):  # distinct items per user, popularity-skewed
        its = rng.choice(items, size=per_user, replace=False,
                         p=(w := 1 / np.arange(1, items + 1) ** 0.8) / w.sum())
        rows += [(u, int(i), 1_500_000_000 + 3600 * t) for t, i in enumerate(its)]
    return domain_from_frame(pd.DataFrame(rows, columns=["user", "item", "ts"]), "bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=18_357)
    ap.add_argument("--users", type=int, default=4096)
    ap.add_argument("--per-user", type=int, default=9)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = synthetic_domain(args.users, args.items, args.per_user)
    g = torch.Generator().manual_seed(0)
    ue = torch.randn(2, d.n_users + 1, args.dim, generator=g)
    ie = torch.randn(2, d.n_items + 1, args.dim, generator=g)

    def dot(batch, cand):
        return ue[0, batch.users] @ ie[0].T

    def two(batch, cand):
        return torch.stack([ue[k, batch.users] @ ie[k].T for k in (0, 1)])

    blend = Blend(ALPHAS, "zscore")
    print(f"{d.n_users:,} users × {d.n_items:,} items, history {args.per_user - 2} + 1 events, "
          f"policy mask={'on' if d.repeat_free else 'off'}, {args.threads} thread(s)")
    print(f"{'scorer':22s} {'policy only s':>13s} {'both s':>8s} {'extra':>7s}  identical")
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn, count, variants in (("dot product (d 64)", dot, None, 1),
                                          ("blend of two, 21 α", two, blend, 2)):
            kw = {} if count is None else {"count": count, "variants": variants}
            out = {}
            for which in ("policy", "both"):
                ev = OmegaConf.merge(OmegaConf.structured(EvalSchema), {"mask_variants": which})
                e = Evaluator(d, ev, cache_root=tmp)
                out[which] = best_time(lambda e=e, fn=fn, kw=kw: e.run(fn, "test", **kw),
                                       args.repeats)
            same = np.array_equal(out["policy"][1].ranks, out["both"][1].ranks)
            t0, t1 = out["policy"][0], out["both"][0]
            print(f"{name:22s} {t0:13.3f} {t1:8.3f} {100 * (t1 / t0 - 1):6.1f} %  {same}")


if __name__ == "__main__":
    main()
