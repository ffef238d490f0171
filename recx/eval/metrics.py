"""Ranking metrics from the 0-based rank of the single target (EVALUATION §5).

    Recall@K = 1[r < K]    NDCG@K = 1[r < K] / log2(r + 2)    MRR@K = 1[r < K] / (r + 1)
    AUC      = 1 − r / (|C| − 1)
"""

from __future__ import annotations

import numpy as np

KNOWN = ("Recall", "HR", "NDCG", "MRR", "AUC")
# the rank of a target that is not a candidate (a history item under a forced mask): a miss at
# every cut-off, whatever the catalogue size
MISS = np.iinfo(np.int32).max - 1


def per_user(ranks: np.ndarray, metric: str, k: int | None = None,
             n_candidates: np.ndarray | None = None) -> np.ndarray:
    r = np.asarray(ranks, dtype=np.float64)
    if metric == "AUC":
        auc = 1.0 - r / np.maximum(np.asarray(n_candidates, dtype=np.float64) - 1, 1)
        return np.where(r >= MISS, 0.0, auc)
    hit = r < k
    if metric in ("Recall", "HR"):
        return hit.astype(np.float64)
    if metric == "NDCG":
        return np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)
    if metric == "MRR":
        return np.where(hit, 1.0 / (r + 1.0), 0.0)
    raise ValueError(f"unknown metric {metric!r}; known: {KNOWN}")


def compute(ranks: np.ndarray, metrics, ks, n_candidates: np.ndarray | None = None) -> dict:
    """Mean of every metric@K over users; column names are exactly `<Metric>@<K>`."""
    out: dict[str, float] = {}
    if len(ranks) == 0:
        return out
    for m in metrics:
        if m == "AUC":
            out["AUC"] = float(per_user(ranks, "AUC", n_candidates=n_candidates).mean())
            continue
        for k in ks:
            out[f"{m}@{k}"] = float(per_user(ranks, m, k).mean())
    return out


def is_metric_key(key: str) -> bool:
    name, _, k = key.partition("@")
    return (name in KNOWN and k.isdigit()) or key == "AUC"
