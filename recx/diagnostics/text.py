"""Text diagnostics: how similar the item texts of sources and target are, as the text models
(UniSRec, IDP) see them — through the run's text encoder (`text=`), whose item embeddings are
cached in the feature store already.

Profile of one domain: the mean of its items' unit-length embeddings and a seeded sample of at
most 2,000 of them (items without text are left out and counted). Several sources pool: the
means weighted by their items with text, the samples side by side.

Pair diagnostics (`text.*` keys):

- `text.centroid_cos`: cosine between the sources' and the target's mean embeddings;
- `text.nn_cos`: for a target item, the cosine of its most similar source item, averaged over
  the target's sample ("does every target item have a look-alike among the sources?");
- `text.nn_cos_self`: the same within the target (another target item), the reference that
  `text.nn_cos` approaches when the sources cover the target as well as the target itself;
- `text.empty_share.*`: the share of items without text.
"""

from __future__ import annotations

import numpy as np

from recx.diagnostics.cache import Profile, cached_profile, triple

SAMPLE = 2000


def text_profile(domain) -> Profile:
    from recx.data.features.text import embedding_key

    env = domain.env
    key = {"embeddings": embedding_key(domain, env.text, bool(getattr(env, "offline", False))),
           "sample": SAMPLE}
    return cached_profile(domain, "text", key, lambda: build_text_profile(domain))


def build_text_profile(domain, sample: int = SAMPLE) -> Profile:
    from recx.data.features.text import item_embeddings

    emb = np.asarray(item_embeddings(domain)[1:], dtype=np.float32)
    norm = np.linalg.norm(emb, axis=1)
    has = norm > 0
    unit = emb[has] / norm[has, None]
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(unit), min(sample, len(unit)), replace=False))
    return {"mean": unit.mean(0) if len(unit) else np.zeros(emb.shape[1], np.float32),
            "sample": unit[pick], "n_text": np.int64(len(unit)), "n_items": np.int64(len(emb))}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def nearest_cos(queries: np.ndarray, pool: np.ndarray, exclude_self: bool = False) -> float:
    """Mean over the queries of the cosine of their most similar pool row (unit rows)."""
    if not len(queries) or not len(pool):
        return float("nan")
    sim = queries @ pool.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
        if sim.shape[1] < 2:
            return float("nan")
    return float(sim.max(1).mean())


def text_diagnostics(sources: list[Profile], target: Profile) -> dict[str, float]:
    n_text = np.array([float(p["n_text"]) for p in sources])
    mean = sum(w * p["mean"] for w, p in zip(n_text / max(n_text.sum(), 1.0), sources,
                                              strict=True))
    pool = np.concatenate([p["sample"] for p in sources])
    out = {"text.centroid_cos": _cos(mean, target["mean"]),
           "text.nn_cos": nearest_cos(target["sample"], pool),
           "text.nn_cos_self": nearest_cos(target["sample"], target["sample"], exclude_self=True)}
    empty = 1.0 - n_text.sum() / max(sum(float(p["n_items"]) for p in sources), 1.0)
    out.update(triple("text.empty_share", empty,
                      1.0 - float(target["n_text"]) / max(float(target["n_items"]), 1.0)))
    return out
