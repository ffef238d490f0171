"""BERT4Rec's network as RecBole 1.2.1 builds it (models/baselines.md §3).

SASRec's embedding + post-LN transformer stack with bidirectional attention (only padding is
masked) and one extra `[MASK]` token (id N + 1), followed by RecBole's prediction head:

    o = LayerNorm(GELU(Linear(d → d)(x)))
    logits = o · E[0..N]ᵀ + b            (b: one output bias per item, padding column included)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recx.models.modules.sasrec_net import SASRecNet
from recx.models.modules.transformer import init_normal


class BERT4RecNet(nn.Module):
    def __init__(self, n_items: int, max_len: int, hidden: int, inner: int, layers: int,
                 heads: int, dropout: float, attn_dropout: float, act: str, eps: float,
                 init_range: float):
        super().__init__()
        self.n_items = n_items
        self.mask_token = n_items + 1
        self.encoder = SASRecNet(n_items, max_len, hidden, inner, layers, heads, dropout,
                                 attn_dropout, act, eps, init_range, norm_first=False,
                                 causal=False, extra_tokens=1)
        self.out_dense = nn.Linear(hidden, hidden)
        self.out_ln = nn.LayerNorm(hidden, eps=eps)
        init_normal(self.out_dense, init_range)
        self.out_bias = nn.Parameter(torch.zeros(n_items + 1))

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items [B, L] (left-padded, may hold [MASK]) → encoder states [B, L, D]."""
        return self.encoder.encode(items)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """RecBole's prediction head, position-wise (so it may run on selected positions only)."""
        return self.out_ln(F.gelu(self.out_dense(x)))

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """Head outputs [..., D] → [..., N + 1] over the items (the [MASK] row is never a
        candidate)."""
        return out @ self.encoder.item_emb.weight[: self.n_items + 1].T + self.out_bias
