"""Benchmark of item-text encoding and UniSRec pre-training throughput (CPU).

Run: python bench/bench_text.py [--items 2000] [--batches 3] [--threads 1 2]

1. Encoding: items/s of the bundled all-MiniLM-L6-v2 (text=minilm) on the item texts of a
   synthetic domain (title, category, brand), per torch thread count, model load excluded; the
   hashing test encoder for reference.
2. Pre-training: samples/s of one UniSRec contrastive step (d = 300, 384-d text vectors, batch
   1024, both views) on the union of two synthetic domains, per thread count, and side by side
   the two speed choices of the implementation: length-sorted chunks vs the full padded batch
   in the encoder, and the adaptor once per distinct item vs once per occurrence.
Timings on a shared machine are noisy: run it when the machine is quiet and compare ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def synthetic_domain(root: Path, name: str, seed: int, topics: list[int], n_items: int,
                     text_dim: int = 384):
    from omegaconf import OmegaConf

    from recx.config.schema import DatasetSchema, EvalSchema, TextSchema
    from recx.data.domain import load_domain
    from recx.data.features import FeatureEnv

    ds = OmegaConf.merge(OmegaConf.structured(DatasetSchema), {
        "name": name, "reader": "synthetic", "download": False,
        "text_fields": ["title", "category", "brand"],
        "synthetic": {"seed": seed, "topics": topics, "n_items": n_items, "n_users": 2000}})
    paths = OmegaConf.create({"cache": str(root / "cache"), "data": str(root / "data")})
    d = load_domain(ds, OmegaConf.structured(EvalSchema), paths)
    d.env = FeatureEnv(cache_root=root / "cache", text=OmegaConf.merge(
        OmegaConf.structured(TextSchema), {"kind": "hashing", "name": "hashing",
                                           "dim": text_dim}), progress="false")
    return d


def bench_encoding(domain, threads: list[int]) -> None:
    from omegaconf import OmegaConf

    from recx.config.schema import TextSchema
    from recx.data.features.text import HashingEncoder, item_texts, load_encoder

    texts = [t for t in item_texts(domain)[1:] if t]
    n_tok = np.mean([len(t.split()) for t in texts])
    print(f"\n[encoding] {len(texts)} item texts, {n_tok:.1f} words on average")
    t0 = time.perf_counter()
    enc = load_encoder(OmegaConf.structured(TextSchema))  # text=minilm defaults
    print(f"  all-MiniLM-L6-v2 load: {time.perf_counter() - t0:.1f}s ({enc.device})")
    enc.encode(texts[:64], progress=False)  # warm-up
    rates = {}
    for n in threads:
        torch.set_num_threads(n)
        t0 = time.perf_counter()
        enc.encode(texts, progress=False)
        rates[n] = len(texts) / (time.perf_counter() - t0)
        print(f"  minilm  threads={n}: {rates[n]:8.1f} items/s")
    if len(rates) > 1:
        base = rates[threads[0]]
        print("  ratio: " + "  ".join(f"{n} threads ×{r / base:.2f}" for n, r in rates.items()))
    t0 = time.perf_counter()
    HashingEncoder(384).encode(texts)
    print(f"  hashing (tests): {len(texts) / (time.perf_counter() - t0):8.0f} items/s")


def step_rate(model, batches, opt) -> float:
    model.train()
    t0, n = time.perf_counter(), 0
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        opt.step()
        n += len(batch["targets"])
    return n / (time.perf_counter() - t0)


def bench_pretrain(union, n_batches: int, threads: list[int]) -> None:
    import recx.models.modules.unisrec_net as net_mod
    from recx.models.registry import build_model, model_config
    from recx.train.loop import make_optimizer

    torch.manual_seed(0)
    model = build_model(model_config("unisrec", plm_size=384))
    model.fit_inputs(union)
    it = iter(model.train_batches(union, np.random.default_rng(0), union.train_users()))
    batches = [next(it) for _ in range(n_batches + 1)]
    lengths = np.concatenate([(b["items"] > 0).sum(1).numpy() for b in batches])
    print(f"\n[pre-training] UniSRec d=300, 384-d text, batch {len(batches[0]['targets'])}, "
          f"{union.name}: window length mean {lengths.mean():.1f}, max {lengths.max()}")
    opt = make_optimizer(model, model.optim)
    step_rate(model, batches[:1], opt)  # warm-up
    rates = {}
    for n in threads:
        torch.set_num_threads(n)
        rates[n] = step_rate(model, batches[1:], opt)
        print(f"  threads={n}: {rates[n]:7.1f} samples/s")
    if len(rates) > 1:
        base = rates[threads[0]]
        print("  ratio: " + "  ".join(f"{n} threads ×{r / base:.2f}" for n, r in rates.items()))
    torch.set_num_threads(threads[0])
    chunked = rates[threads[0]]
    original = net_mod.UniSRecNet.encode_last
    net_mod.UniSRecNet.encode_last = (
        lambda self, table, index, items, chunk_rows=0: original(self, table, index, items,
                                                                 chunk_rows=1 << 30))
    try:
        full = step_rate(model, batches[1:], opt)
    finally:
        net_mod.UniSRecNet.encode_last = original
    model.moe_per_occurrence = True
    per_occ = step_rate(model, batches[1:], opt)
    model.moe_per_occurrence = False
    print(f"  threads={threads[0]}: length-sorted chunks {chunked:.1f} vs full padded batch "
          f"{full:.1f} samples/s (×{chunked / full:.2f}); adaptor per distinct item "
          f"{chunked:.1f} vs per occurrence {per_occ:.1f} (×{chunked / per_occ:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000, help="items per synthetic domain")
    ap.add_argument("--batches", type=int, default=3, help="timed pre-training steps")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-encoding", action="store_true")
    args = ap.parse_args()
    from recx.data.merge import merge_domains

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = synthetic_domain(root, "synth_a", 1, list(range(0, 8)), args.items)
        b = synthetic_domain(root, "synth_b", 2, list(range(4, 12)), args.items)
        if not args.skip_encoding:
            bench_encoding(a, args.threads)
        union = merge_domains([a, b])
        union.sources = [a, b]
        bench_pretrain(union, args.batches, args.threads)


if __name__ == "__main__":
    main()
