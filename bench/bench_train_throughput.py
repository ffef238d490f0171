"""Training throughput of PrepRec against SASRec, side by side on the same domains.

Run: python bench/bench_train_throughput.py [--datasets ml_100k amazon_beauty_2014] [--batches 30]
     [--threads 1]

Each model trains `--batches` batches of its own recipe (PrepRec: 128 users drawn with
replacement, their last ≤ 200 training events, every next item a target, BCE with one negative;
SASRec: shuffled windows of ≤ 51 events, 128 per batch, stride 25, full-softmax CE) after two
warm-up batches; batch building is timed with the step, as in training. It prints training
sequences per second (rows of a batch), next-item targets per second (positions that carry a
loss) and the PrepRec / SASRec ratios. Domains come from the dataset configs (real data sets need
`python scripts/link_dev_data.py` or `dataset.raw_dir`); the synthetic ones need nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def compose(overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas

    register_resolvers()
    register_schemas()
    register_aliases([ROOT / "conf"])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hcompose(config_name="train", overrides=overrides)


def targets_of(model_name: str, batch: dict) -> tuple[int, int]:
    """(sequences, next-item targets with a loss) of one training batch."""
    if model_name == "preprec":
        idx = batch["idx"]
        return len(idx), int(((idx[:, :-1] >= 0) & (idx[:, 1:] >= 0)).sum())
    items = batch["items"]
    sel = (items[:, :-1] > 0) & (items[:, 1:] > 0) & batch["target_mask"]
    return len(items), int(sel.sum())


def measure(dataset: str, model_name: str, n_batches: int) -> dict:
    from recx.models.registry import build_model
    from recx.stages.common import Context
    from recx.train.loop import make_optimizer

    cfg = compose([f"model={model_name}", f"dataset={dataset}", "progress=false"])
    ctx = Context(cfg=cfg, run_dir=Path("."), device=torch.device("cpu"))
    domain = ctx.domain(cfg.dataset)
    torch.manual_seed(0)
    model = build_model(cfg.model, n_items=domain.n_items)
    model.fit_inputs(domain)
    model.train()
    opt = make_optimizer(model, model.optim)
    rng = np.random.default_rng(0)
    users = domain.train_users()
    it = iter(model.train_batches(domain, rng, users))
    seqs = tgts = 0
    elapsed = 0.0
    for k in range(n_batches + 2):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:  # a small domain: start another epoch
            it = iter(model.train_batches(domain, rng, users))
            batch = next(it)
        opt.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        opt.step()
        dt = time.perf_counter() - t0
        if k >= 2:  # two warm-up batches
            s, t = targets_of(model_name, batch)
            seqs, tgts, elapsed = seqs + s, tgts + t, elapsed + dt
    return {"seq_per_s": seqs / elapsed, "targets_per_s": tgts / elapsed,
            "targets_per_seq": tgts / seqs, "s_per_batch": elapsed / n_batches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["ml_100k", "amazon_beauty_2014"])
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    print(f"{args.batches} timed batches per model, {args.threads} torch thread(s)\n")
    print("| dataset | model | sequences/s | targets/s | targets per sequence | s per batch |")
    print("|---|---|---:|---:|---:|---:|")
    ratios = []
    for ds in args.datasets:
        res = {m: measure(ds, m, args.batches) for m in ("preprec", "sasrec")}
        for m, r in res.items():
            print(f"| {ds} | {m} | {r['seq_per_s']:,.0f} | {r['targets_per_s']:,.0f} | "
                  f"{r['targets_per_seq']:.1f} | {r['s_per_batch']:.3f} |", flush=True)
        ratios.append((ds, res["preprec"]["seq_per_s"] / res["sasrec"]["seq_per_s"],
                       res["preprec"]["targets_per_s"] / res["sasrec"]["targets_per_s"]))
    print()
    for ds, rs, rt in ratios:
        print(f"{ds}: PrepRec / SASRec = {rs:.2f}× sequences/s, {rt:.2f}× targets/s")


if __name__ == "__main__":
    main()
