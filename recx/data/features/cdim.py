"""The data side of IDP's cross-domain ID matcher (CDIM, models/idp.md §2.2): its behaviour
positives (items adjacent in a user's training sequence), the items it can index, and the
behavioural item–item similarity that its vectors are checked against. The matcher itself is
trained by `recx.models.cdim_training`."""

from __future__ import annotations

import numpy as np

from recx.data.scenarios import TRAIN


def cooccur_pairs(domain, window: int = 1) -> np.ndarray:
    """[P, 2] item pairs (i, j) with j at most `window` events after i in the same user's
    training sequence (one row per event pair, so frequent pairs come up in proportion to their
    count); pairs of an item with itself are dropped."""
    train = domain.split == TRAIN
    out = []
    for k in range(1, int(window) + 1):
        a = np.arange(len(domain.item) - k)
        ok = train[a] & train[a + k] & (domain.user[a] == domain.user[a + k])
        pairs = np.stack([domain.item[a[ok]], domain.item[a[ok] + k]], axis=1)
        out.append(pairs[pairs[:, 0] != pairs[:, 1]])
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), np.int64)


def indexable_items(domain, x: np.ndarray) -> np.ndarray:
    """bool [N + 1]: items with text and at least one training event (row 0 never)."""
    ok = (np.abs(x).sum(1) > 0) & (domain.train_item_counts > 0)
    ok[0] = False
    return ok



# --------------------------------------------------------------------------------- diagnostics


def behaviour_cosine(domain, pairs: np.ndarray) -> np.ndarray:
    """Item–item cosine of the pairs' training user sets (the usual item-CF similarity)."""
    from scipy import sparse

    train = domain.split == TRAIN
    m = sparse.csr_matrix((np.ones(int(train.sum()), dtype=np.float32),
                           (domain.item[train], domain.user[train])),
                          shape=(domain.n_items + 1, domain.n_users + 1))
    m.data[:] = 1.0  # a user counts once per item
    norm = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    dots = np.asarray(m[pairs[:, 0]].multiply(m[pairs[:, 1]]).sum(1)).ravel()
    return dots / np.maximum(norm[pairs[:, 0]] * norm[pairs[:, 1]], 1e-12)


def similarity_spearman(vectors: np.ndarray, domain, n_pairs: int = 100_000, seed: int = 0,
                        min_count: int = 5) -> dict:
    """Spearman ρ between cos(vectors_i, vectors_j) and the behavioural cosine over random pairs
    of items with ≥ `min_count` training events (also over the pairs with a shared user)."""
    from scipy.stats import spearmanr

    items = np.flatnonzero(domain.train_item_counts >= min_count)
    items = items[items > 0]
    rng = np.random.default_rng(seed)
    pairs = rng.choice(items, size=(n_pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    text = (v[pairs[:, 0]] * v[pairs[:, 1]]).sum(1)
    beh = behaviour_cosine(domain, pairs)
    shared = beh > 0
    return {"rho": float(spearmanr(text, beh).statistic), "n_pairs": len(pairs),
            "rho_shared": float(spearmanr(text[shared], beh[shared]).statistic)
            if shared.sum() > 2 else float("nan"), "n_shared": int(shared.sum())}
