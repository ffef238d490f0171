"""Figure: PrepRec's popularity features of a few items of one dataset over time.

    python scripts/plot_preprec_features.py dataset=ml_100k dataset.raw_dir=<folder> \
        [model.features.coarse_days=10 ...] [--items 50 172] [--out preprec_features]

Arguments of the form key=value are recx overrides (composed like `recx train`); the model is
always preprec, so `model.features.*` and `model.paper_compat.*` apply. Writes <out>.{png,pdf,csv}.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="recx overrides, e.g. dataset=ml_100k")
    ap.add_argument("--items", type=int, nargs="*", default=None, help="item ids (default: "
                    "popular items peaking at different times)")
    ap.add_argument("--n-items", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("preprec_features"))
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.location import conf_dir
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas
    from recx.data.domain import load_domain
    from recx.data.features import FeatureEnv
    from recx.models.registry import build_model
    from recx.plots import popularity_trajectories

    register_resolvers()
    register_schemas()
    register_aliases([conf_dir()])
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("train", ["model=preprec", *args.overrides])
    domain = load_domain(cfg.dataset, cfg.eval, cfg.paths)
    domain.env = FeatureEnv(cache_root=Path(cfg.paths.cache))
    model = build_model(cfg.model, n_items=domain.n_items)
    model.fit_inputs(domain)
    popularity_trajectories(args.out, domain, model.tables, items=args.items,
                            n_items=args.n_items)
    print(f"wrote {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
