"""Benchmark: seconds per (sources, target) pair of the transferability diagnostics on the
development data sets (docs/transferability.md).

    python scripts/link_dev_data.py            # once: data/<config> → the development copies
    python bench/bench_diagnostics.py [--models preprec,statmlp,unisrec] [key=value ...]

Key=value arguments are recx overrides (e.g. paths.root=…). For every model and data set it
times, separately:

- the model's own features (PrepRec's popularity tables, statmlp's graph statistics, the text
  embeddings of UniSRec/IDP), built on a miss: a transfer builds them anyway, so they are not a
  cost of the diagnostics (a cache hit reads them);
- the domain's diagnostics profiles built from those features (cold: no diagnostics cache) and
  read back from the store (warm).

A pair costs the cold profiles of its domains plus the comparison (cold), or the stored profiles
plus the comparison (warm). Pairs: the development matrix (sources Beauty, Sports, Yelp-A and the
three together, each to every target it does not contain) for preprec and statmlp; for text
models each text data set to every other one, and ML-latest-small + Magazine together. Writes
<paths.outputs>/bench/diagnostics_<models>.csv with one row per (model, pair).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd

BEAUTY, SPORTS, YELP = "amazon_beauty_2014", "amazon_sports_2014", "yelp_a"
TARGETS = [BEAUTY, SPORTS, YELP, "ml_100k", "ml_latest_small", "amazon_gift_cards_2018",
           "amazon_magazine_2018"]
SOURCES = [[BEAUTY], [SPORTS], [YELP], [BEAUTY, SPORTS, YELP]]
TEXT = ["ml_100k", "ml_latest_small", "amazon_gift_cards_2018", "amazon_magazine_2018"]
TEXT_SOURCES = [[t] for t in TEXT] + [["amazon_magazine_2018", "ml_latest_small"]]


def pairs(model: str) -> list[tuple[list[str], str]]:
    targets, sources = (TEXT, TEXT_SOURCES) if model in ("unisrec", "idp") else (TARGETS, SOURCES)
    return [(s, t) for s, t in itertools.product(sources, targets) if t not in s]


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="recx overrides, e.g. paths.root=/big/disk")
    ap.add_argument("--models", default="preprec,statmlp,unisrec",
                    help="comma-separated models (preprec, statmlp, unisrec, idp)")
    args = ap.parse_args()
    models = args.models.split(",")

    import torch

    from recx.cli import conf_dir
    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas

    register_resolvers()
    register_schemas()
    register_aliases([conf_dir()])
    torch.set_num_threads(1)
    rows, outputs = [], None
    for name in models:
        outputs, model_rows = bench_model(name, args.overrides)
        rows += model_rows
    frame = pd.DataFrame(rows)
    out = outputs / "bench" / f"diagnostics_{'_'.join(models)}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    print("\nseconds per pair (the models' own features already built):")
    print(frame.groupby("model")[["cold_s", "warm_s"]].describe(
        percentiles=[0.5]).round(3).to_string())
    print(f"\nwrote {out}")


def compose_for(name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from recx.cli import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("diagnose", [f"model={name}", *overrides])


def profile_builds(name: str, model, domain, periods) -> float:
    """Seconds to build the domain's profiles from its features, without any cache."""
    from recx.diagnostics import activity, inputs, temporal, text

    seconds = timed(activity.build_activity_profile, domain)[0]
    seconds += timed(temporal.build_time_profile, domain, periods)[0]
    if name == "preprec":
        seconds += timed(inputs.build_preprec_profile, domain, periods)[0]
    elif name == "statmlp":
        seconds += timed(inputs.build_statmlp_profile, domain, model.stats_cfg,
                         list(model.fields))[0]
    else:
        seconds += timed(text.build_text_profile, domain)[0]
    return seconds


def bench_model(name: str, overrides: list[str]) -> tuple[Path, list[dict]]:
    import torch

    import recx.diagnostics.cache as cache
    from recx.diagnostics import pair_diagnostics, temporal
    from recx.models.registry import build_model
    from recx.stages.common import Context

    base = compose_for(name, overrides)
    outputs = Path(base.paths.outputs)
    ctx = Context(cfg=base, run_dir=outputs / "bench", device=torch.device("cpu"))
    model = build_model(base.model)
    domains, cold = {}, {}
    for ds in sorted({t for _, t in pairs(name)} | {x for s, _ in pairs(name) for x in s}):
        d = ctx.domain(compose_for(name, [f"target={ds}", *overrides]).target)
        domains[ds] = d
        periods = temporal.period_config(d, model)
        features_s = timed(model_features, name, model, d, periods)[0]
        cold[ds] = profile_builds(name, model, d, periods)
        pair_diagnostics([d], d, model)  # stores the profiles
        cache._LOADED.clear()
        warm_s = timed(pair_diagnostics, [d], d, model)[0]
        print(f"{name:8s} {ds:24s} model features {features_s:7.2f} s   profiles: cold "
              f"{cold[ds]:6.2f} s, from the store {warm_s:5.2f} s  "
              f"({d.n_users} users, {d.n_items} items, {d.n_events} events)", flush=True)
    rows = []
    for src, tgt in pairs(name):
        srcs = [domains[s] for s in src]
        cache._LOADED.clear()
        warm_s, diag = timed(pair_diagnostics, srcs, domains[tgt], model)
        compare_s = timed(pair_diagnostics, srcs, domains[tgt], model)[0]  # profiles in memory
        cold_s = sum(cold[s] for s in {*src, tgt}) + compare_s
        key = "+".join(sorted(src))
        rows.append({"model": name, "source": key, "target": tgt, "cold_s": cold_s,
                     "warm_s": warm_s, "compare_s": compare_s, "n_values": len(diag)})
        print(f"{name:8s} {key:50s} → {tgt:24s} cold {cold_s:6.2f} s   warm {warm_s:5.3f} s",
              flush=True)
    return outputs, rows


def model_features(name, model, domain, periods):
    """The model's own per-domain features (a transfer builds them; cached in the store)."""
    if name == "preprec":
        from recx.data.features.popularity import popularity_tables

        return popularity_tables(domain, periods)
    if name == "statmlp":
        from recx.data.features.graphstats import graph_stats

        return graph_stats(domain, model.stats_cfg)
    from recx.data.features.text import item_embeddings

    return item_embeddings(domain)


if __name__ == "__main__":
    main()
