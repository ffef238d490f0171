"""IDP's cross-domain ID matcher (CDIM) as pure maths (models/idp.md §2.2, §3).

- `CDIMHead`: the trainable head on frozen sentence vectors, `Dropout → Linear → GELU → Dropout →
  Linear` (hidden sizes configurable), L2-normalised output, so dot products are cosines.
- `info_nce`: in-batch InfoNCE where row i's positive is column i; columns holding the same item
  as row i's positive are false negatives and masked out.
- `simcse_loss` (textual CL: two dropout passes of the same items) and `behaviour_loss`
  (behaviour CL: behaviourally close pairs, symmetric).
- `top_m` (exact, chunked cosine search), `aggregation_weights` (softmax over the m similarities
  at temperature τ, or uniform), `aggregate` (the weighted sum of the retrieved ID embeddings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CDIMHead(nn.Module):
    """c = normalise(Linear(GELU(Linear(Dropout(x)))...)) with `hidden` the layer sizes (the last
    is the output size); dropout before every linear layer (SimCSE's positives)."""

    def __init__(self, in_dim: int, hidden: list[int] | tuple[int, ...] = (512, 256),
                 dropout: float = 0.1):
        super().__init__()
        if not hidden:
            raise ValueError("the CDIM head needs at least one layer size")
        layers: list[nn.Module] = []
        prev = in_dim
        for k, size in enumerate(hidden):
            if k:
                layers.append(nn.GELU())
            layers += [nn.Dropout(dropout), nn.Linear(prev, int(size))]
            prev = int(size)
        self.mlp = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float,
             ids: torch.Tensor | None = None) -> torch.Tensor:
    """mean_i −log softmax_j(a_i·b_j / τ)[i] for L2-normalised rows. With `ids` (the item of each
    column's positive), off-diagonal columns whose item equals row i's are masked (−∞): the same
    item twice in a batch is no negative of itself."""
    logits = a @ b.T / temperature
    rows = torch.arange(len(a), device=a.device)
    if ids is not None:
        same = ids[:, None] == ids[None, :]
        same[rows, rows] = False
        logits = logits.masked_fill(same, -torch.inf)
    return F.cross_entropy(logits, rows)


def simcse_loss(head: CDIMHead, x: torch.Tensor, temperature: float,
                ids: torch.Tensor | None = None) -> torch.Tensor:
    """Unsupervised SimCSE: the same items under two dropout masks are each other's positive."""
    return info_nce(head(x), head(x), temperature, ids)


def behaviour_loss(head: CDIMHead, x_i: torch.Tensor, x_j: torch.Tensor, temperature: float,
                   ids_i: torch.Tensor | None = None,
                   ids_j: torch.Tensor | None = None) -> torch.Tensor:
    """Behaviour CL: (i, j) pairs that are behaviourally close are positives, the other items of
    the batch negatives; symmetric (i → j and j → i), since closeness is undirected."""
    c_i, c_j = head(x_i), head(x_j)
    return 0.5 * (info_nce(c_i, c_j, temperature, ids_j) + info_nce(c_j, c_i, temperature, ids_i))


def top_m(query: torch.Tensor, index: torch.Tensor, m: int, chunk: int = 4096,
          valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-m of `query @ index.T` (cosines for normalised rows), `chunk` queries at a time.

    `valid` [N] bool excludes index rows (never returned). Returns (sims [Q, m], ids [Q, m]) in
    decreasing similarity; ids are row numbers of `index`."""
    n_valid = int(valid.sum()) if valid is not None else len(index)
    if not 1 <= m <= n_valid:
        raise ValueError(f"top-{m} search over {n_valid} retrievable items")
    sims, ids = [], []
    for start in range(0, len(query), chunk):
        s = query[start:start + chunk] @ index.T
        if valid is not None:
            s = s.masked_fill(~valid[None, :], -torch.inf)
        v, i = torch.topk(s, m, dim=1)
        sims.append(v)
        ids.append(i)
    if not sims:
        return query.new_zeros(0, m), torch.zeros(0, m, dtype=torch.long, device=query.device)
    return torch.cat(sims), torch.cat(ids)


def aggregation_weights(sims: torch.Tensor, weighting: str = "softmax",
                        tau: float = 0.1) -> torch.Tensor:
    """[Q, m] weights summing to one: softmax(sims / τ) or uniform 1/m."""
    if weighting == "softmax":
        return torch.softmax(sims / tau, dim=1)
    if weighting == "uniform":
        return torch.full_like(sims, 1.0 / sims.shape[1])
    raise ValueError(f"unknown weighting {weighting!r} (softmax | uniform)")


def aggregate(ids: torch.Tensor, weights: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """e_q = Σ_k weights[q, k] · table[ids[q, k]] → [Q, d]."""
    return (weights.unsqueeze(-1) * table[ids]).sum(1)


def ridge_map(src: torch.Tensor, dst: torch.Tensor, l2: float = 1e-3) -> torch.Tensor:
    """argmin_P ‖src P − dst‖² + l2 · n · ‖P‖² in closed form (the text-only ablation's map
    from CDIM space to ID space, fitted on source items)."""
    k = src.shape[1]
    gram = src.T @ src + l2 * len(src) * torch.eye(k, dtype=src.dtype, device=src.device)
    return torch.linalg.solve(gram, src.T @ dst)
