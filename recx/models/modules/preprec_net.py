"""PrepRec's network (models/preprec.md §3): an item-popularity MLP and a small pre-LN causal
transformer. Items have no ID embedding: an item is the MLP of its popularity vector, so the same
weights score any domain. Pure maths: no config, no I/O, no domain tables.

With the paper's sizes (138 → 100 → 50, two blocks of width 50) the network has 44,950
parameters: MLP 18,950; per block two LayerNorms (200), Q/K/V with bias (7,650) and a 50→50→50
FFN (5,100); the final LayerNorm (100).
"""

from __future__ import annotations

import torch
from torch import nn

from recx.models.modules.transformer import MultiHeadAttention, attention_mask, sinusoid_table

RELATIVE_TIME = ("causal_rank", "window_rank", "argsort")


class PrepRecBlock(nn.Module):
    """Q = LN(x); x = Q + Attn(Q, K = V = x) (no output projection); x = LN(x);
    x = x + FFN(x); x = x · mask. The SASRec.pytorch block that the original code forked."""

    def __init__(self, hidden: int, heads: int, dropout: float, eps: float = 1e-8):
        super().__init__()
        self.attn_ln = nn.LayerNorm(hidden, eps=eps)
        self.attn = MultiHeadAttention(hidden, heads, dropout)
        self.ffn_ln = nn.LayerNorm(hidden, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, keep: torch.Tensor):
        q = self.attn_ln(x)
        x = q + self.attn(q, attn_mask, kv=x)
        x = self.ffn_ln(x)
        x = x + self.ffn(x)
        return x * keep


class PrepRecNet(nn.Module):
    def __init__(self, in_dim: int = 138, mlp_hidden: int = 100, hidden: int = 50,
                 max_len: int = 200, blocks: int = 2, heads: int = 1, dropout: float = 0.2,
                 learned_positions: bool = False):
        super().__init__()
        self.max_len = max_len
        self.item_mlp = nn.Sequential(nn.Linear(in_dim, mlp_hidden), nn.ReLU(),
                                      nn.Linear(mlp_hidden, hidden))
        if learned_positions:
            self.pos_emb = nn.Embedding(max_len, hidden)
        else:
            self.pos_emb = None
            self.register_buffer("pos_table", sinusoid_table(max_len, hidden), persistent=False)
        # relative-time codes 0 (padding) … max_len, looked up in a fixed sinusoidal table
        self.register_buffer("time_table", sinusoid_table(max_len + 1, hidden), persistent=False)
        self.blocks = nn.ModuleList(PrepRecBlock(hidden, heads, dropout) for _ in range(blocks))
        self.final_ln = nn.LayerNorm(hidden, eps=1e-8)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.xavier_normal_(p)
        nn.init.zeros_(self.item_mlp[0].bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Popularity vectors [..., in_dim] → item embeddings [..., hidden]."""
        return self.item_mlp(x)

    def encode(self, x: torch.Tensor, real: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """x [B, L, in_dim] popularity vectors of the left-padded history, real [B, L] bool,
        codes [B, L] relative-time codes → hidden states [B, L, hidden]. The most recent item is
        always at position max_len − 1."""
        length = x.shape[1]
        pos = torch.arange(self.max_len - length, self.max_len, device=x.device)
        pe = self.pos_emb(pos) if self.pos_emb is not None else self.pos_table[pos]
        keep = real.unsqueeze(-1).to(x.dtype)
        h = (self.embed(x) + pe + self.time_table[codes]) * keep
        mask = attention_mask(real.long(), causal=True)
        for block in self.blocks:
            h = block(h, mask, keep)
        return self.final_ln(h)


def relative_time_codes(ts: torch.Tensor, real: torch.Tensor, mode: str = "causal_rank",
                        next_ts: torch.Tensor | None = None) -> torch.Tensor:
    """Codes in 0..L of the inter-event gaps of left-padded windows (§2.8); padding → 0.

    g_k = t_k − t_{k−1} (0 for the first real event of the window).
    causal_rank: 1 + |{j ≤ k : g_j < g_k}| — only gaps up to position k.
    window_rank: 1 + |{j : g_j < g_k}| over every gap of the window.
    argsort: the original code (`paper_compat.argsort_time`): gaps to the NEXT event (the target
    of each position, `next_ts`; at inference the query time), then argsort(gaps) + 1 — the
    sorting permutation written position by position, not ranks.
    """
    if mode not in RELATIVE_TIME:
        raise ValueError(f"relative_time={mode!r}; use one of {RELATIVE_TIME}")
    length = ts.shape[1]
    ts = ts.to(torch.float64)
    if mode == "argsort":
        if next_ts is None:
            raise ValueError("the argsort time code needs the next event's time")
        gaps = torch.where(real, next_ts.to(torch.float64) - ts, torch.inf)
        n_real = real.sum(1, keepdim=True)
        # sort real gaps (padding sorts last), then write perm[j] at the j-th real position
        perm = torch.sort(gaps, dim=1, stable=True).indices
        first = length - n_real  # left padding: real positions are first..L-1
        j = torch.arange(length, device=ts.device)[None, :] - first
        src = perm.gather(1, j.clamp(0, length - 1))
        codes = (src - first + 1).clamp(min=0)
        return torch.where(real, codes, torch.zeros_like(codes)).long()
    prev_real = torch.zeros_like(real)
    prev_real[:, 1:] = real[:, :-1]
    prev_ts = torch.zeros_like(ts)
    prev_ts[:, 1:] = ts[:, :-1]
    gaps = torch.where(real & prev_real, ts - prev_ts, torch.zeros_like(ts))
    less = (gaps.unsqueeze(1) < gaps.unsqueeze(2)) & real.unsqueeze(1)  # [B, k, j]: g_j < g_k
    if mode == "causal_rank":
        less &= torch.ones(length, length, dtype=torch.bool, device=ts.device).tril()
    codes = 1 + less.sum(-1)
    return torch.where(real, codes, torch.zeros_like(codes)).long()
