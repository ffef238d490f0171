"""OmegaConf resolvers used in the configs (`${recx.source_key:${source}}`,
`${recx.fresh_dir:<parent>}`)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path


def source_key(source) -> str:
    """Sorted source names joined by '+' (the key of multi-source artifacts)."""
    if source is None:
        return "none"
    return "+".join(sorted(str(k) for k in source))


def fresh_dir(parent: str) -> str:
    """A new directory `<parent>/<date>_<time>` that no other run has: two runs started in the
    same second get `…_2`, `…_3`, claimed with an exclusive mkdir, so a run's `.hydra/` and its
    metrics always belong together. Cached per config (Hydra hands the value to sweep jobs)."""
    base = Path(parent)
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in itertools.count(1):
        path = base / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return str(path)
    raise AssertionError("unreachable")


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("recx.source_key"):
        OmegaConf.register_new_resolver("recx.source_key", source_key)
    if not OmegaConf.has_resolver("recx.fresh_dir"):
        OmegaConf.register_new_resolver("recx.fresh_dir", fresh_dir, use_cache=True)
