"""The model's own input shift: how differently distributed the features are that the model
reads on the sources and on the target, computed with the model's feature extractor (no
trained weights are needed).

Each model's input is a set of discrete fields (or a soft one-hot of one), so a domain's
profile is, per field, the distribution of its states over what the model sees in training:

- PrepRec (`preprec`): for every training event (a seeded sample of at most 200k), the item's
  popularity percentile in each of the 12 past coarse periods (`coarse.lag_1` … `lag_12`) and
  in the last fine window (`fine.lag_1`), binned like the encoding's anchors (10 and 5 equal
  bins) with state 0 = **empty** (no event in the window, or a period before the data: the
  encoding's zero vector). View `pos` takes the event's own item (history items and training
  targets), view `cat` a uniformly drawn catalogue item at the same periods (the negatives, and
  most full-ranking candidates).
- statmlp (`statmlp`): the model's binned fields (`user.act_u`, `user.size_u`, …, `edge.dens_e`,
  only those in `model.features.fields`) over the training pairs (`pos`), and over pairs of a
  training pair's user with a uniformly drawn item (`cat`, a sample of at most 100k; the edge
  cluster assigned as the model does).

Text models (UniSRec, IDP) read item-text embeddings: their input shift is `text.*`
(`recx/diagnostics/text.py`).

Pair diagnostics, for each view v: `input.v.tv` = the total variation distance between the
sources' and the target's state distributions (½ Σ |p − q|: 0 = identical, 1 = disjoint),
averaged over the fields; `input.v.tv_<group>` the same per group of fields (coarse and fine;
user, item and edge); `input.v.empty_<group>.*` the share of empty inputs (PrepRec).
"""

from __future__ import annotations

import numpy as np

from recx.diagnostics.cache import Profile, cached_profile, triple
from recx.diagnostics.temporal import period_config

PREPREC_SAMPLE = 200_000
STATMLP_SAMPLE = 100_000


# ------------------------------------------------------------------------------- profile format
def _put(out: Profile, view: str, group: str, field: str, states: np.ndarray, n_states: int,
         empty: int | None) -> None:
    counts = np.bincount(states, minlength=n_states).astype(np.float64)
    out[f"p.{view}.{group}.{field}"] = counts / max(counts.sum(), 1.0)
    out[f"e.{group}.{field}"] = np.int64(-1 if empty is None else empty)


def _fields(p: Profile) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """{view: {(group, field): probabilities}}"""
    out: dict = {}
    for key, value in p.items():
        if key.startswith("p."):
            _, view, group, field = key.split(".")
            out.setdefault(view, {})[group, field] = value
    return out


# ------------------------------------------------------------------------------------- PrepRec
def percentile_states(perc: np.ndarray, bins: int) -> np.ndarray:
    """0 = empty (percentile ≤ 0: no event, or before the data); 1..bins = equal-width bins of
    (0, 100]."""
    perc = np.asarray(perc, dtype=np.float64)
    b = np.clip(np.ceil(perc * bins / 100.0), 1, bins).astype(np.int64)
    return np.where(perc > 0, b, 0)


def preprec_profile(domain, model) -> Profile:
    cfg = period_config(domain, model)
    key = {"tables": cfg.table_key(), "coarse_bins": cfg.coarse_anchors,
           "fine_bins": cfg.fine_anchors, "sample": PREPREC_SAMPLE}
    return cached_profile(domain, "input-preprec", key, lambda: build_preprec_profile(domain, cfg))


def build_preprec_profile(domain, cfg, sample: int = PREPREC_SAMPLE) -> Profile:
    from recx.data.features.popularity import popularity_tables

    tables = popularity_tables(domain, cfg)
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(domain.train_mask)
    weight = len(idx)
    if len(idx) > sample:
        idx = np.sort(rng.choice(idx, sample, replace=False))
    P = tables.event_coarse[idx].astype(np.int64)
    F = tables.event_fine[idx].astype(np.int64)
    items = {"pos": domain.item[idx].astype(np.int64),
             "cat": rng.integers(1, domain.n_items + 1, size=len(idx))}
    H = cfg.coarse_history
    out: Profile = {"weight": np.float64(weight)}
    for view, it in items.items():
        for k in range(1, H + 1):  # coarse row P + H − k holds period P − k
            states = percentile_states(tables.coarse[P + H - k, it], cfg.coarse_anchors)
            _put(out, view, "coarse", f"lag_{k}", states, cfg.coarse_anchors + 1, 0)
        states = percentile_states(tables.fine[F, it], cfg.fine_anchors)  # period F − 1
        _put(out, view, "fine", "lag_1", states, cfg.fine_anchors + 1, 0)
    return out


# ------------------------------------------------------------------------------------- statmlp
def statmlp_profile(domain, model) -> Profile:
    env = getattr(domain, "env", None)
    seed, det = (0, True) if getattr(env, "cache_root", None) is None else (
        int(env.seed), bool(env.deterministic))
    key = {"stats": model.stats_cfg.hash_key(), "fields": list(model.fields), "seed": seed,
           "deterministic": det, "sample": STATMLP_SAMPLE}
    return cached_profile(domain, "input-statmlp", key,
                          lambda: build_statmlp_profile(domain, model.stats_cfg,
                                                        list(model.fields)))


def build_statmlp_profile(domain, cfg, fields: list[str], sample: int = STATMLP_SAMPLE) -> Profile:
    from recx.data.features.graphstats import code_tables

    none = cfg.cluster_bins
    N = domain.n_items
    tables = code_tables(domain, cfg, graph=any(f not in ("act_u", "act_i") for f in fields))
    ucodes, icodes, ecodes, stats = tables.user, tables.item, tables.edge, tables.stats
    eu, ei, pos_edge = tables.edge_u, tables.edge_i, tables.edge_label
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(eu), size=min(sample, len(eu)))
    cat_u = eu[pick]
    cat_i = rng.integers(1, N + 1, size=len(pick))
    cat_edge = _edge_rows(stats, cat_u, cat_i, len(ecodes) - 1, cfg.edge.op)
    views = {"pos": (eu, ei, pos_edge), "cat": (cat_u, cat_i, cat_edge)}
    n_states = {"act": cfg.activity_bins, "size": none + 1, "dens": none + 1}
    out: Profile = {"weight": np.float64(len(eu))}
    for view, (u, i, e) in views.items():
        for group, codes, names in (("user", ucodes[u], ("act_u", "size_u", "dens_u")),
                                    ("item", icodes[i], ("act_i", "size_i", "dens_i")),
                                    ("edge", ecodes[e], ("size_e", "dens_e"))):
            for k, name in enumerate(names):  # code columns: [act, size, dens] | [size, dens]
                if name in fields:
                    _put(out, view, group, name, codes[:, k], n_states[name.split("_")[0]], None)
    return out


def _edge_rows(stats, users, items, none_row: int, op: str) -> np.ndarray:
    """Edge-code rows of (user, item) pairs: the nearest edge centroid, or the "none" row when
    either side has no training edge (or the model has no edge fields)."""
    if stats is None:
        return np.full(len(users), none_row, np.int64)
    import torch

    from recx.data.features.graphstats import assign_pairs

    lab = assign_pairs(torch.from_numpy(stats.user_emb[users]),
                       torch.from_numpy(stats.item_emb[items]),
                       torch.from_numpy(stats.edge_centroids), op).numpy()
    ok = (stats.user_degree[users] > 0) & (stats.item_degree[items] > 0)
    return np.where(ok, lab, none_row).astype(np.int64)


# ------------------------------------------------------------------------------------ registry
# model name → the profile of what it reads; text models read item text (`text.py`)
INPUT_PROFILES = {"preprec": preprec_profile, "statmlp": statmlp_profile}


def input_profile(domain, model) -> Profile | None:
    build = INPUT_PROFILES.get(getattr(model, "name", None))
    return None if build is None else build(domain, model)


# ----------------------------------------------------------------------------------- distances
def input_diagnostics(sources: list[Profile], target: Profile) -> dict[str, float]:
    weights = np.array([float(p["weight"]) for p in sources])
    weights = weights / weights.sum()
    src_views = [_fields(p) for p in sources]
    out: dict[str, float] = {}
    for view, fields in _fields(target).items():
        tv, empty = {}, {}
        for (group, field), q in fields.items():
            p = sum(w * s[view][group, field] for w, s in zip(weights, src_views, strict=True))
            tv.setdefault(group, []).append(0.5 * float(np.abs(p - q).sum()))
            e = int(target[f"e.{group}.{field}"])
            if e >= 0:
                empty.setdefault(group, []).append((float(p[e]), float(q[e])))
        out[f"input.{view}.tv"] = float(np.mean([v for vals in tv.values() for v in vals]))
        if len(tv) > 1:
            for group, vals in tv.items():
                out[f"input.{view}.tv_{group}"] = float(np.mean(vals))
        for group, pairs in empty.items():
            s, t = np.mean(pairs, axis=0)
            out.update(triple(f"input.{view}.empty_{group}", s, t))
    return out
