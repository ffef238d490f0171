"""Figures: statmlp's statistical features of source and target domains, side by side.

    python scripts/plot_statmlp_features.py 'source=[synth_a,synth_b,synth_c]' target=synth_t \
        [model.features.node2vec.p=0.5 ...] [--out statmlp_features]

Arguments of the form key=value are recx overrides (composed like `recx transfer`, model always
statmlp; real data sets take `target.raw_dir=` / `source.<name>.raw_dir=`). Writes what every
`recx transfer model=statmlp` draws into its run dir (the data of `StatMLP.figures`, drawn by
`recx.plots.draw`), with no checkpoint:
<out>_activity.{png,pdf,csv} (activity distributions and bins) and, with graph fields,
<out>_clusters.{png,pdf,csv} (cluster size / density and their bins).
The graph statistics come from the feature cache (built on a miss) under paths.root.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="recx overrides, e.g. target=synth_t")
    ap.add_argument("--out", type=Path, default=Path("statmlp_features"))
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.location import conf_dir
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas
    from recx.data.domain import load_domain
    from recx.data.features import FeatureEnv
    from recx.models.registry import build_model
    from recx.plots import draw

    register_resolvers()
    register_schemas()
    register_aliases([conf_dir()])
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("transfer", ["model=statmlp", *args.overrides])
    env = FeatureEnv(cache_root=Path(cfg.paths.cache), seed=int(cfg.seed),
                     deterministic=bool(cfg.deterministic))
    domains, roles = {}, {}
    for role, ds in [*(("source", d) for _, d in sorted(cfg.source.items())),
                     ("target", cfg.target)]:
        d = load_domain(ds, cfg.eval, cfg.paths, offline=bool(cfg.offline))
        d.env = env
        domains[d.name], roles[d.name] = d, role
    # the figures of `recx transfer model=statmlp`, without a checkpoint (no weights are read)
    names = draw(build_model(cfg.model).figures(domains, roles), args.out)
    print("wrote " + ", ".join(str(args.out.parent / n) for n in names))


if __name__ == "__main__":
    main()
