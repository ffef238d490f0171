"""Candidate sets (EVALUATION §2): full ranking, or the target plus N sampled negatives.

Negatives are drawn per (user, split) from items the user never interacted with in the whole
domain, seeded by (`negatives_seed`, split, user), and cached in the store so that every model,
seed and stage sees the same candidates.
"""

from __future__ import annotations

import numpy as np

from recx.config.hashing import stable_hash
from recx.data.scenarios import SPLIT_CODES
from recx.store import Store

NEG_VERSION = 1


def protocol_string(ev, mask: bool | None) -> str:
    scen = {"leave_one_out": "loo", "global_time": "gt"}.get(ev.scenario, ev.scenario)
    if ev.candidates == "full":
        cand, m = "full", "on" if mask else "off"
    else:
        cand = f"sampled:{ev.n_negatives}:{ev.sampler}"
        if ev.share_valid_test_negatives:
            cand += ":shared"
        m = "n-a"
    users = f"/users={int(ev.sample_users)}" if getattr(ev, "sample_users", None) else ""
    return f"{scen}/{cand}/mask={m}/ties={ev.ties}{users}"


def _draw(rng, n_items: int, seen: np.ndarray, n: int, weights: np.ndarray | None) -> np.ndarray:
    """n distinct items from 1..n_items not in `seen` (uniform or weighted), fewer if not enough."""
    eligible = n_items - len(seen)
    if eligible <= n:
        mask = np.ones(n_items + 1, dtype=bool)
        mask[0] = False
        mask[seen] = False
        out = np.flatnonzero(mask)
        return rng.permutation(out)
    out: list[int] = []
    taken = set(seen.tolist())
    while len(out) < n:
        need = (n - len(out)) * 2 + 8
        if weights is None:
            cand = rng.integers(1, n_items + 1, size=need)
        else:
            cand = rng.choice(n_items + 1, size=need, p=weights)
        for c in cand.tolist():
            if c not in taken:
                taken.add(c)
                out.append(c)
                if len(out) == n:
                    break
    return np.asarray(out, dtype=np.int64)


def sample_negatives(domain, users: np.ndarray, split: str, ev) -> np.ndarray:
    """[Q, n_negatives] int64 item ids, -1 where fewer items were eligible."""
    n = ev.n_negatives
    weights = None
    if ev.sampler == "popularity":
        w = domain.train_item_counts.astype(np.float64) ** ev.popularity_power
        w[0] = 0.0
        if w.sum() <= 0:
            w[1:] = 1.0
        weights = w / w.sum()
    elif ev.sampler != "uniform":
        from recx.errors import ConfigError

        raise ConfigError(f"unknown eval.sampler={ev.sampler!r}", hint="use uniform or popularity")
    code = 0 if ev.share_valid_test_negatives else SPLIT_CODES[split]
    out = np.full((len(users), n), -1, dtype=np.int64)
    for row, u in enumerate(users.tolist()):
        seen = np.unique(domain.item[domain.indptr[u]:domain.indptr[u + 1]])
        rng = np.random.default_rng([ev.negatives_seed, code, u])
        # a popularity sampler may run out of weighted mass; fall back to uniform draws
        w = weights
        if w is not None and w[np.setdiff1d(np.arange(1, domain.n_items + 1), seen)].sum() <= 0:
            w = None
        neg = _draw(rng, domain.n_items, seen, n, w)
        out[row, : len(neg)] = neg
    return out


def negatives_for(domain, users: np.ndarray, split: str, ev, cache_root) -> np.ndarray:
    """Cached negatives of the split's query users (rows aligned with `users`)."""
    keys = {k: ev[k] for k in ("n_negatives", "sampler", "popularity_power",
                               "share_valid_test_negatives", "negatives_seed")}
    h = stable_hash(domain.data_hash, keys, NEG_VERSION)
    store = Store(cache_root)
    entry = store.entry("negatives", domain.name, h)

    def build(tmp):
        for s in ("valid", "test"):
            q = domain.queries(s)
            np.save(tmp / f"{s}.npy", sample_negatives(domain, q.users, s, ev))
            np.save(tmp / f"{s}_users.npy", q.users)

    store.get_or_build(entry, build, meta={"kind": "negatives", "dataset": domain.name,
                                           "data_hash": domain.data_hash, **keys})
    neg = np.load(entry / f"{split}.npy")
    cached_users = np.load(entry / f"{split}_users.npy")
    if len(cached_users) != len(users) or not np.array_equal(cached_users, users):
        index = {u: i for i, u in enumerate(cached_users.tolist())}
        neg = neg[[index[u] for u in users.tolist()]]
    return neg
