"""GRU4Rec's network as RecBole 1.2.1 builds it (models/baselines.md §4).

    x = Dropout(E[items])            E = Embedding(N+1, emb, padding_idx=0), Xavier-normal
    h = GRU(emb → hidden, layers, no biases)(x)      layer-0 weights Xavier-uniform
    s = Linear(hidden → emb)(h)                      PyTorch's default init (RecBole leaves it)
    logits = s · Eᵀ

Histories arrive left-padded (most recent item last); the GRU must not run over the padding in
front of a sequence, so rows are first shifted to the right-padded layout RecBole uses.
"""

from __future__ import annotations

import torch
from torch import nn


def left_to_right_padded(items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L] left-padded → (right-padded [B, L], lengths [B])."""
    length = items.shape[1]
    n_real = (items > 0).sum(1)
    src = torch.arange(length, device=items.device)[None, :] + (length - n_real)[:, None]
    right = items.gather(1, src.clamp(max=length - 1))
    return right.masked_fill(src >= length, 0), n_real


class GRU4RecNet(nn.Module):
    def __init__(self, n_items: int, embedding: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, embedding, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding, hidden, num_layers=layers, bias=False, batch_first=True)
        self.dense = nn.Linear(hidden, embedding)
        # RecBole's _init_weights: Xavier-normal embeddings (the padding row included) and
        # Xavier-uniform layer-0 GRU weights; deeper GRU layers and `dense` keep PyTorch's init
        nn.init.xavier_normal_(self.item_emb.weight)
        nn.init.xavier_uniform_(self.gru.weight_hh_l0)
        nn.init.xavier_uniform_(self.gru.weight_ih_l0)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items [B, L] left-padded → projected states [B, L, emb], left-padded again (the state
        after the most recent item at L − 1)."""
        right, n_real = left_to_right_padded(items)
        out, _ = self.gru(self.drop(self.item_emb(right)))
        out = self.dense(out)
        # back to left padding: position j of a row holds the state after its item j − pad
        length = items.shape[1]
        src = torch.arange(length, device=items.device)[None, :] - (length - n_real)[:, None]
        return out.gather(1, src.clamp(min=0)[..., None].expand(-1, -1, out.shape[-1]))

    def last_state(self, items: torch.Tensor) -> torch.Tensor:
        """[B, emb]: the state after each row's most recent item (RecBole's gather at len − 1)."""
        right, n_real = left_to_right_padded(items)
        out, _ = self.gru(self.drop(self.item_emb(right)))
        idx = (n_real - 1).clamp(min=0)
        return self.dense(out[torch.arange(len(items), device=items.device), idx])
