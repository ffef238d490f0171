"""Per-domain profiles in the feature store (the conventions of `recx/data/features`).

A profile is a flat dict of numpy arrays (scalars as 0-d arrays). It is built once per domain
and setting and kept in `cache/features/<dataset>/diagnostics-<kind>-<hash>/profile.npz`, built
atomically through `recx.store.Store`; a domain without a `FeatureEnv` (tests, notebooks) is
profiled in memory. Profiles loaded in this process are also kept in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from recx.config.hashing import stable_hash

DIAGNOSTICS_VERSION = 1
Profile = dict[str, np.ndarray]
_LOADED: dict[str, Profile] = {}


def cached_profile(domain, kind: str, key, build: Callable[[], Profile]) -> Profile:
    """The `kind` profile of `domain` for settings `key` (anything JSON-able), from the store,
    built on a miss."""
    h = stable_hash(domain.data_hash, kind, key, DIAGNOSTICS_VERSION)
    root = getattr(getattr(domain, "env", None), "cache_root", None)
    memo = f"{root}:{domain.name}:{kind}:{h}"
    if memo in _LOADED:
        return _LOADED[memo]
    if root is None:
        profile = {k: np.asarray(v) for k, v in build().items()}
    else:
        from recx.store import Store

        store = Store(root)
        entry = store.entry("features", domain.name, f"diagnostics-{kind}-{h}")

        def write(tmp: Path) -> None:
            np.savez(tmp / "profile.npz", **build())

        store.get_or_build(entry, write, meta={
            "kind": "features", "feature": f"diagnostics-{kind}", "dataset": domain.name,
            "data_hash": domain.data_hash, "feat_hash": h, "config": key,
            "diagnostics_version": DIAGNOSTICS_VERSION})
        with np.load(entry / "profile.npz") as z:
            profile = {k: z[k] for k in z.files}
    _LOADED[memo] = profile
    return profile


def weighted_mean(values, weights) -> float:
    """Σ w·v / Σ w (the sources' mixture, each source weighted by its training events)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    return float((v * w).sum() / w.sum()) if w.sum() > 0 else float("nan")


def triple(prefix: str, source: float, target: float) -> dict[str, float]:
    """`<prefix>.source`, `<prefix>.target` and `<prefix>.dist` = |target − source|."""
    return {f"{prefix}.source": float(source), f"{prefix}.target": float(target),
            f"{prefix}.dist": float(abs(target - source))}
