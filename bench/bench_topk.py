"""Full-ranking top-k benchmark: U users × N items, dot-product scores, chunked by users.

Three ways, side by side, on synthetic N(0, 1) embeddings:
  matmul  — the scores only, materialised chunk by chunk (the arithmetic floor);
  topk    — chunked matmul + torch.topk on every score row (the common baseline; its order
            among ties is unspecified);
  recx    — recx.eval.topk.dot_topk: matmul + per-group maxima, the k best groups, then the
            exact top-k among their items (score desc, item id asc; EVALUATION §4).
The recx lists are checked against a stable-sort reference on a sample of users.

GPU (the issue's target: 1M × 1M, d 64, bf16, under 3 s on one H100):
    python bench/bench_topk.py --device cuda --users 1000000 --items 1000000 --dim 64 \
        --dtype bf16 --user-chunk 4096
CPU (a slice of that workload; the CPU has no fast bf16 matmul, so float32):
    python bench/bench_topk.py --users 4096 --items 1000000
"""

from __future__ import annotations

import argparse
import time

import torch

from recx.eval.topk import dot_topk, reference_topk, select_topk


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int) -> float:
    """Best of `repeats` wall times (after one warm-up run)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=4096)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on cuda, float32 on cpu) | bf16 "
                    "| float32")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--user-chunk", type=int, default=None,
                    help="users per score block (default: 4096 on cuda, 512 on cpu)")
    ap.add_argument("--group", type=int, default=128, help="items per group (recx)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--check-users", type=int, default=256)
    args = ap.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    dtype = {"auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
             "bf16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    chunk = args.user_chunk or (4096 if device.type == "cuda" else 512)
    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(args.users, args.dim, generator=g, device=device).to(dtype)
    items = torch.randn(args.items, args.dim, generator=g, device=device).to(dtype)

    def matmul_only():
        acc = torch.zeros((), device=device)
        for lo in range(0, args.users, chunk):
            s = q[lo:lo + chunk] @ items.T
            acc += s[:, 0].float().sum()  # consume one column so nothing is skipped
        return acc

    def matmul_topk():
        out = []
        for lo in range(0, args.users, chunk):
            out.append(torch.topk(q[lo:lo + chunk] @ items.T, args.k, dim=1).indices)
        return torch.cat(out)

    def recx_topk():
        return dot_topk(q, items, args.k, user_chunk=chunk, group=args.group,
                        out_device=device)

    t_mm = timed(matmul_only, device, args.repeats)
    t_topk = timed(matmul_topk, device, args.repeats)
    t_recx = timed(recx_topk, device, args.repeats)

    # exactness on a sample of users against the definition (stable sort) on the same scores
    n_chk = min(args.check_users, args.users)
    block = q[:n_chk] @ items.T
    ids = select_topk(block, args.k, group=args.group)[1]
    exact = bool(torch.equal(ids, reference_topk(block, args.k)[1]))
    del block

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"device={name} users={args.users} items={args.items} dim={args.dim} k={args.k} "
          f"dtype={str(dtype).replace('torch.', '')} user_chunk={chunk} group={args.group}")
    print(f"{'method':<34}{'seconds':>10}{'vs matmul':>11}{'vs topk':>10}")
    for label, t in (("matmul only (chunked)", t_mm), ("chunked matmul + torch.topk", t_topk),
                     ("recx dot_topk (grouped, exact)", t_recx)):
        print(f"{label:<34}{t:>10.3f}{t / t_mm:>10.2f}x{t / t_topk:>9.2f}x")
    print(f"recx top-{args.k} equals the stable-sort reference on {n_chk} users: {exact}")


if __name__ == "__main__":
    main()
