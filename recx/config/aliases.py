"""`source=`, `target=` and `base=` as generated alias groups over the single `conf/dataset/`
and `conf/model/` folders (ARCHITECTURE §5.3).

For each dataset name we store tiny ConfigStore nodes that hold only a defaults list pointing
at the real file. `target=X` places `conf/dataset/X.yaml` at `cfg.target`; every
`source/X` node has the package `source.X`, so `'source=[a,b]'` composes into `cfg.source.a`
and `cfg.source.b`. Dataset content is never copied.
"""

from __future__ import annotations

from pathlib import Path


def option_names(conf_dirs: list[Path], group: str) -> list[str]:
    names: set[str] = set()
    for d in conf_dirs:
        folder = Path(d) / group
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_")}
    return sorted(names)


def register_aliases(conf_dirs: list[Path]) -> dict[str, list[str]]:
    """Store the alias groups; returns the option names per group (for "did you mean")."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    datasets = option_names(conf_dirs, "dataset")
    models = option_names(conf_dirs, "model")
    for name in datasets:
        ref = {"defaults": [{"/dataset@_here_": name}, "_self_"]}
        cs.store(group="target", name=name, node=ref)
        cs.store(group="source", name=name, node=ref, package=f"source.{name}")
    for name in models:
        cs.store(group="base", name=name, node={"defaults": [{"/model@_here_": name}, "_self_"]})
    return {"dataset": datasets, "target": datasets, "source": datasets, "model": models,
            "base": models}
