"""Benchmark and diagnostics of IDP's cross-domain ID matcher (CPU).

Run: python bench/bench_idp.py [--threads 1 2] [--spearman] [--root DIR]

1. Retrieval: target items/s of the exact top-m search (`recx.models.modules.cdim.top_m`) in
   chunks of 1024 and 4096 queries, side by side with one dense matmul + topk over all queries
   (the memory-hungry reference), for 10k and 100k pre-training items, 256-d matcher space.
2. CDIM head training: steps/s of one step (batch 1024 pairs + 1024 items, 384-d input, head
   512 → 256, SimCSE + behaviour loss), per torch thread count.
3. `--spearman` (diagnostic, slow: encodes the domains with all-MiniLM-L6-v2): fits the
   text-only matcher (`cdim.behaviour_positive=none`) and CDIM (`cooccur`) on the `--sources`
   (default synth_a synth_b synth_c) and prints the Spearman correlation between matcher
   similarity and behavioural similarity (item–item cosine of the training user sets) on the
   held-aside `--target` (default synth_t), for the raw sentence vectors, the text-only matcher
   and CDIM, over `--seeds` matcher seeds. `--root` keeps the cache (default: a temporary folder;
   `--root .` uses the project's outputs/ and data/ links, for the real data sets).
Timings on a shared machine are noisy: run it when the machine is quiet and compare ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from timing import best_time

CONF = Path(__file__).resolve().parents[1] / "conf"


def _rate(fn, n_items: int, repeat: int = 3) -> float:
    return n_items / best_time(fn, repeat)[0]


def bench_retrieval(m: int = 10, n_query: int = 5000, dim: int = 256) -> None:
    import torch.nn.functional as F

    from recx.models.modules.cdim import top_m

    print(f"\n[retrieval] exact top-{m}, {n_query} target items, {dim}-d, "
          f"{torch.get_num_threads()} thread(s)")
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(n_query, dim, generator=g), dim=1)
    for n_pre in (10_000, 100_000):
        index = F.normalize(torch.randn(n_pre, dim, generator=g), dim=1)
        dense = _rate(lambda index=index: torch.topk(q @ index.T, m, dim=1), n_query, 2)
        rates = {c: _rate(lambda c=c, index=index: top_m(q, index, m, chunk=c), n_query, 2)
                 for c in (1024, 4096)}
        print(f"  N_pre={n_pre:>7,}: dense {dense:>9,.0f} items/s | " + " | ".join(
            f"chunk {c}: {r:>9,.0f} items/s ({r / dense:.2f}x)" for c, r in rates.items()))


def bench_cdim_step(threads: list[int], plm: int = 384, bs: int = 1024) -> None:
    from recx.models.modules.cdim import CDIMHead, behaviour_loss, simcse_loss

    print(f"\n[CDIM head] one training step: {bs} pairs + {bs} items, {plm}-d → 512 → 256")
    x = torch.randn(5000, plm)
    rates = {}
    for n in threads:
        torch.set_num_threads(n)
        torch.manual_seed(0)
        head = CDIMHead(plm)
        opt = torch.optim.Adam(head.parameters())
        pairs = torch.randint(0, 5000, (bs, 2))
        items = torch.randperm(5000)[:bs]

        def step(head=head, opt=opt, pairs=pairs, items=items):
            loss = simcse_loss(head, x[items], 0.05, items) + behaviour_loss(
                head, x[pairs[:, 0]], x[pairs[:, 1]], 0.05, pairs[:, 0], pairs[:, 1])
            opt.zero_grad()
            loss.backward()
            opt.step()

        rates[n] = _rate(step, 1, 5)
        print(f"  {n} thread(s): {rates[n]:.1f} steps/s"
              + (f" ({rates[n] / rates[threads[0]]:.2f}x of {threads[0]})" if n != threads[0]
                 else ""))


def _domains(root: Path, sources: list[str], target: str, seed: int):
    from hydra import compose, initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas
    from recx.data.domain import load_domain
    from recx.data.features import FeatureEnv
    from recx.data.merge import merge_domains

    register_resolvers()
    register_schemas()
    register_aliases([CONF])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="transfer", overrides=[
            "model=idp", f"source=[{','.join(sources)}]", f"target={target}",
            f"paths.root={root}", "progress=false", f"seed={seed}"])
    env = FeatureEnv(cache_root=Path(cfg.paths.cache), text=cfg.text, seed=seed,
                     progress="false")
    sources = []
    for _, ds in sorted(cfg.source.items()):
        d = load_domain(ds, cfg.eval, cfg.paths)
        d.env = env
        sources.append(d)
    union = merge_domains(sources)
    union.sources, union.env = sources, env
    target = load_domain(cfg.target, cfg.eval, cfg.paths)
    target.env = env
    return union, target, cfg


def spearman_report(root: Path, sources: list[str], target_name: str, seeds: list[int]) -> None:
    for seed in seeds:
        spearman_seed(root, sources, target_name, seed)


def spearman_seed(root: Path, sources: list[str], target_name: str, seed: int) -> None:
    from recx.data.features.cdim import similarity_spearman
    from recx.data.features.text import item_embeddings
    from recx.models.cdim_training import fit_matcher
    from recx.models.modules.cdim import CDIMHead

    union, target, cfg = _domains(root, sources, target_name, seed)
    x = item_embeddings(target)
    rows = [("raw sentence vectors", x)]
    for label, positive in (("text-only matcher (SimCSE)", "none"),
                            ("CDIM (SimCSE + behaviour)", "cooccur")):
        t0 = time.perf_counter()
        mcfg = {**dict(cfg.model.cdim), "behaviour_positive": positive}
        matcher = fit_matcher(union, mcfg, x.shape[1])
        head = CDIMHead(x.shape[1], list(mcfg["head"]), float(mcfg["dropout"]))
        head.load_state_dict(matcher.head)
        with torch.no_grad():
            rows.append((label, head.eval()(torch.from_numpy(x)).numpy()))
        print(f"  fitted {label} on {union.name} in {time.perf_counter() - t0:.0f}s")
    print(f"\n[Spearman] seed {seed}: matcher cosine vs behavioural cosine on the held-aside "
          f"domain {target.name} (random pairs of items with ≥ 5 training events)")
    for label, vecs in rows:
        r = similarity_spearman(vecs, target, n_pairs=200_000, seed=0)
        print(f"  {label:<28} rho = {r['rho']:+.3f} over {r['n_pairs']:,} pairs | "
              f"pairs with a shared user: rho = {r['rho_shared']:+.3f} ({r['n_shared']:,})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--spearman", action="store_true")
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--sources", nargs="+", default=["synth_a", "synth_b", "synth_c"])
    ap.add_argument("--target", default="synth_t")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--no-speed", action="store_true", help="skip parts 1 and 2")
    args = ap.parse_args()
    torch.set_num_threads(args.threads[0])
    if not args.no_speed:
        bench_retrieval()
        bench_cdim_step(args.threads)
    if args.spearman:
        torch.set_num_threads(args.threads[0])
        report = (args.sources, args.target, args.seeds)
        if args.root is not None:
            spearman_report(args.root.resolve(), *report)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                spearman_report(Path(tmp), *report)


if __name__ == "__main__":
    main()
