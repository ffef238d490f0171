"""UniSRec's network (models/unisrec.md §3): the MoE adaptor over frozen text vectors and RecBole's
SASRec encoder (learned positions, LayerNorm, dropout, post-LN causal blocks).

The adaptor and the encoder are separate so the adapter can run the adaptor once per distinct
item of a batch. Only the last position's state is ever used (the sequence representation), so
the last block computes its query, output and FFN at that position only; keys and values still
cover the whole window. This gives the same output as running the block on every position.
`encode_all` keeps every position (fine-tuning with the every-position sampler).
"""

from __future__ import annotations

import torch
from torch import nn

from recx.models.modules.moe_adaptor import MoEAdaptor
from recx.models.modules.sasrec_net import left_pad_positions
from recx.models.modules.transformer import TransformerBlock, attention_mask, init_normal


class UniSRecNet(nn.Module):
    def __init__(self, plm_size: int, hidden: int, inner: int, layers: int, heads: int,
                 dropout: float, attn_dropout: float, act: str, eps: float, init_range: float,
                 max_len: int, n_experts: int, adaptor_dropout: float, noise_floor: float):
        super().__init__()
        self.moe = MoEAdaptor(n_experts, plm_size, hidden, adaptor_dropout, noise_floor,
                              init_range)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden, heads, inner, dropout, attn_dropout, act, eps)
            for _ in range(layers))
        init_normal(self, init_range)  # RecBole: N(0, σ) Linear/Embedding; gate stays zero

    def encode_last(self, table: torch.Tensor, index: torch.Tensor, items: torch.Tensor,
                    chunk_rows: int = 128) -> torch.Tensor:
        """The state at the last position [B, D] (the most recent item) of the left-padded
        windows `items` [B, L], whose input vectors are `table[index]` (table [M, D], index
        [B, L]: e.g. every item's vector and the item ids, or a batch's distinct items).

        Rows are encoded in chunks of similar length, each cut to its longest window: leading
        padding changes nothing (it is masked and positions count from the oldest real item),
        so this equals encoding the full padded batch, at a fraction of the cost when most
        windows are short. Gathering per chunk keeps the backward pass at the table's size.
        """
        n_real = (items > 0).sum(1)
        if len(items) <= chunk_rows:
            width = max(1, int(n_real.max()))
            return self._encode_last(table[index[:, -width:]], items[:, -width:])
        order = torch.argsort(n_real)
        outs = []
        for idx in order.split(chunk_rows):
            width = max(1, int(n_real[idx].max()))
            outs.append(self._encode_last(table[index[idx, -width:]], items[idx, -width:]))
        return torch.cat(outs)[torch.argsort(order)]

    def encode_all(self, table: torch.Tensor, index: torch.Tensor, items: torch.Tensor,
                   chunk_rows: int = 128) -> torch.Tensor:
        """The states at every position [B, L, D] of the left-padded windows `items` [B, L]
        (inputs `table[index]` as in `encode_last`); rows are encoded in length-sorted chunks
        cut to their longest window, and the cut leading padding positions are 0."""
        b, length = items.shape
        n_real = (items > 0).sum(1)
        order = torch.argsort(n_real)
        out = table.new_zeros(b, length, table.shape[1])
        for idx in order.split(chunk_rows):
            width = max(1, int(n_real[idx].max()))
            out[idx, length - width:] = self._encode(table[index[idx, -width:]],
                                                     items[idx, -width:])
        return out

    def _encode(self, item_vecs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = item_vecs + self.pos_emb(left_pad_positions(items))
        x = self.drop(self.ln(x))
        mask = attention_mask(items, causal=True)
        for block in self.blocks:
            x = block(x, mask)
        return x

    def _encode_last(self, item_vecs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = item_vecs + self.pos_emb(left_pad_positions(items))
        x = self.drop(self.ln(x))
        mask = attention_mask(items, causal=True)
        for block in self.blocks[:-1]:
            x = block(x, mask)
        return _last_position(self.blocks[-1], x, mask[:, :, -1:, :])


def _last_position(block: TransformerBlock, x: torch.Tensor, mask: torch.Tensor):
    """`block(x, mask)[:, -1]` computed for the last query only (post-LN block)."""
    q = x[:, -1:]
    h = block.ln1(q + block.drop(block.dense(block.attn(q, mask, kv=x))))
    h = block.ln2(h + block.drop(block.ff2(block.act(block.ff1(h)))))
    return h[:, 0]
