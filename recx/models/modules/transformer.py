"""Transformer blocks shared by SASRec, BERT4Rec and the text models.

`TransformerBlock` follows RecBole's `TransformerLayer` (post-LN): separate Q/K/V projections,
an output dense layer, residual dropout, LayerNorm, then a position-wise FFN with its own residual
and LayerNorm. `norm_first=True` gives the pre-LN variant of the original SASRec code. Attention
runs through `scaled_dot_product_attention`, which picks a fused kernel where one exists.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "swish": F.silu, "tanh": torch.tanh,
               "sigmoid": torch.sigmoid}


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, attn_dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads, self.attn_dropout = heads, attn_dropout
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, kv: torch.Tensor | None = None):
        """x [B, L, D]; mask [B, 1, L, L] bool, True = may attend."""
        b, length, d = x.shape
        kv = x if kv is None else kv
        h = self.heads

        def split(t):
            return t.view(b, -1, h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(kv)), split(self.value(kv))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(b, length, d)


class TransformerBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, attn_dropout: float,
                 act: str = "gelu", eps: float = 1e-12, norm_first: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(hidden, heads, attn_dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.ff1 = nn.Linear(hidden, inner)
        self.ff2 = nn.Linear(inner, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.act = ACTIVATIONS[act]
        self.norm_first = norm_first

    def _ffn(self, x):
        return self.drop(self.ff2(self.drop(self.act(self.ff1(x)))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop(self.dense(self.attn(self.ln1(x), mask)))
            return x + self._ffn(self.ln2(x))
        x = self.ln1(x + self.drop(self.dense(self.attn(x, mask))))
        # RecBole's FeedForward: dense → act → dense → dropout, residual, LayerNorm
        return self.ln2(x + self.drop(self.ff2(self.act(self.ff1(x)))))


def attention_mask(items: torch.Tensor, causal: bool) -> torch.Tensor:
    """[B, 1, L, L] bool: keys that are real items (and not in the future when causal).

    Every query may attend to itself, so left-padded rows never see an all-masked row (whose
    softmax would be NaN); outputs at padding positions are ignored downstream.
    """
    length = items.shape[1]
    keys = (items > 0)[:, None, None, :]
    eye = torch.eye(length, dtype=torch.bool, device=items.device)
    mask = keys | eye
    if causal:
        mask = mask & torch.tril(torch.ones(length, length, dtype=torch.bool,
                                            device=items.device))
    return mask


def init_normal(module: nn.Module, std: float) -> None:
    """RecBole's initialisation: N(0, std) for Linear/Embedding, zero bias, LayerNorm (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Embedding):
            m.weight.data.normal_(0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.data.fill_(1.0)
            m.bias.data.zero_()


def sinusoid_table(n: int, d: int, base: float = 10000.0) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(base) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    return table
