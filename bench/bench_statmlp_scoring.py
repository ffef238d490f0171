"""statmlp's full-ranking MLP: the scores of the distinct (user, item, edge) input combinations
of one item chunk, side by side:

  one pass — gather and add the three [M, hidden] first-layer parts at once, then the head
             (recx before: the [M, 256] temporaries, not the arithmetic, were the cost);
  recx     — StatMLPNet.combo_scores: slices of 4,096 combinations summed in place.

Default sizes are those measured on Amazon Beauty 2014 (1,000 validation users × a 2,097-item
chunk: 2.1 M pairs, 0.62 M distinct combinations; 331 user, ~700 item and 101 edge tuples).
Prints combinations/s, the ratio and the largest difference of the two scores.

    python bench/bench_statmlp_scoring.py [--combos 620000 --threads 1]
"""

from __future__ import annotations

import argparse

import torch
from timing import best_time

from recx.models.modules.statmlp_net import StatMLPNet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--combos", type=int, default=620_000, help="distinct combinations (M)")
    ap.add_argument("--tuples", type=int, nargs=3, default=[331, 700, 101],
                    metavar=("USER", "ITEM", "EDGE"), help="distinct code tuples per side")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # statmlp's default fields: 10 activity bins, 10 + 1 size/density bins per side and edge
    net = StatMLPNet([10, 11, 11], [10, 11, 11], [11, 11], hidden=[256, 128, 64]).eval()
    vocab = {"user": [10, 11, 11], "item": [10, 11, 11], "edge": [11, 11]}
    parts = [net.part(side, torch.stack([torch.randint(0, v, (n,)) for v in vocab[side]], 1))
             for side, n in zip(vocab, args.tuples, strict=True)]
    rows = [torch.randint(0, n, (args.combos,)) for n in args.tuples]
    with torch.no_grad():
        t_old, old = best_time(lambda: net.head_scores(
            parts[0][rows[0]] + parts[1][rows[1]] + parts[2][rows[2]]), args.repeats)
        t_new, new = best_time(lambda: net.combo_scores(parts, rows), args.repeats)
    print(f"{args.combos:,} combinations, {args.threads} thread(s); largest score difference "
          f"{(old - new).abs().max().item():.1e}")
    print(f"{'way':10s} {'s':>7s} {'M combos/s':>11s}")
    for name, t in (("one pass", t_old), ("recx", t_new)):
        print(f"{name:10s} {t:7.3f} {args.combos / t / 1e6:11.2f}")
    print(f"recx speed-up: {t_old / t_new:.2f}×")


if __name__ == "__main__":
    main()
