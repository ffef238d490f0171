"""SASRec's network (models/baselines.md §2): item + learned position embeddings, LayerNorm,
dropout, a stack of causal transformer blocks; items are scored by a dot product with the shared
item table."""

from __future__ import annotations

import torch
from torch import nn

from recx.models.modules.transformer import TransformerBlock, attention_mask, init_normal


def left_pad_positions(items: torch.Tensor) -> torch.Tensor:
    """Position ids counted from the oldest real item of each left-padded row (RecBole's
    convention for right-padded rows), 0 at padding."""
    length = items.shape[1]
    n_real = (items > 0).sum(1, keepdim=True)
    pos = torch.arange(length, device=items.device)[None, :] - (length - n_real)
    return pos.clamp_min(0)


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, max_len: int, hidden: int, inner: int, layers: int,
                 heads: int, dropout: float, attn_dropout: float, act: str, eps: float,
                 init_range: float, norm_first: bool, causal: bool = True, extra_tokens: int = 0):
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1 + extra_tokens, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden, heads, inner, dropout, attn_dropout, act, eps, norm_first)
            for _ in range(layers))
        self.final_ln = nn.LayerNorm(hidden, eps=eps) if norm_first else None
        self.causal = causal
        init_normal(self, init_range)

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """items [B, L] (left-padded) → hidden states [B, L, D]."""
        x = self.item_emb(items) + self.pos_emb(left_pad_positions(items))
        x = self.drop(self.ln(x))
        mask = attention_mask(items, causal=self.causal)
        for block in self.blocks:
            x = block(x, mask)
        if self.final_ln is not None:
            x = self.final_ln(x)
        return x
