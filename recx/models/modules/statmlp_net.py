"""statmlp's scoring networks over binned statistical fields (models/statmlp.md §3).

Inputs are small integer codes, one per field (a bin index, or the field's extra "none" slot),
grouped by side: user fields, item fields and edge fields. A one-hot input followed by a linear
layer is the same maths as a sum of per-field embedding rows, which is how the first layer is
implemented (cheaper, and the user, item and edge parts can be computed once each and added).

- `pair_mlp`: s(u, i) = w4 · Drop(ReLU(W3 · Drop(ReLU(W2 · ReLU(W1 x + b1))))) + b4, with
  x = [user fields | item fields | edge fields] one-hot and widths `hidden` (256, 128, 64).
- `two_tower`: s(u, i) = ⟨MLP_u(user fields), MLP_i(item fields)⟩ + w · MLP_e(edge fields), each
  MLP one-hot → hidden[0] → ReLU → hidden[−1].
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn


class FieldSum(nn.Module):
    """W · onehot(codes): a linear layer on the concatenated one-hot fields, without its bias.
    `vocab` = number of codes per field. Computed as a one-hot matrix product (the fields'
    vocabularies are tiny), whose backward pass is a matrix product too."""

    def __init__(self, vocab: list[int], dim: int, fan_in: int):
        super().__init__()
        self.n_fields, self.width = len(vocab), max(1, sum(vocab))
        offsets = torch.tensor([0, *vocab[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Parameter(torch.empty(self.width, dim))
        bound = 1.0 / math.sqrt(max(1, fan_in))  # nn.Linear's default for the one-hot layer
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [..., n_fields] → [..., dim]."""
        onehot = F.one_hot(codes + self.offsets, self.width).sum(-2)
        return onehot.to(self.weight.dtype) @ self.weight


class StatMLPNet(nn.Module):
    """Pair scorer. `user_vocab`, `item_vocab`, `edge_vocab`: codes per selected field of each
    side (a side may have none)."""

    def __init__(self, user_vocab: list[int], item_vocab: list[int], edge_vocab: list[int],
                 hidden: list[int], dropout: float = 0.1, architecture: str = "pair_mlp"):
        super().__init__()
        self.architecture = architecture
        self.sides = {"user": list(user_vocab), "item": list(item_vocab),
                      "edge": list(edge_vocab)}
        h0 = int(hidden[0])
        if architecture == "pair_mlp":
            fan_in = sum(map(sum, self.sides.values()))
            self.first = nn.ModuleDict({side: FieldSum(v, h0, fan_in)
                                        for side, v in self.sides.items() if v})
            self.bias = nn.Parameter(torch.empty(h0))
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
            layers: list[nn.Module] = []
            widths = [h0, *map(int, hidden[1:])]
            for a, b in itertools.pairwise(widths):
                layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
            layers.append(nn.Linear(widths[-1], 1))
            self.head = nn.Sequential(*layers)
        else:
            out = int(hidden[-1])
            self.first = nn.ModuleDict({side: FieldSum(v, h0, sum(v))
                                        for side, v in self.sides.items() if v})
            self.biases = nn.ParameterDict({side: nn.Parameter(torch.zeros(h0))
                                            for side in self.first})
            self.towers = nn.ModuleDict({side: nn.Sequential(nn.ReLU(), nn.Dropout(dropout),
                                                             nn.Linear(h0, out))
                                         for side in self.first})
            if "edge" in self.first:
                self.edge_out = nn.Linear(out, 1)

    # ----------------------------------------------------------------------- pair_mlp parts
    def part(self, side: str, codes: torch.Tensor) -> torch.Tensor:
        """The first-layer contribution of one side's fields (0 when the side has none)."""
        if side not in self.first:
            return codes.new_zeros((*codes.shape[:-1], 1), dtype=self.bias.dtype)
        return self.first[side](codes)

    def head_scores(self, pre: torch.Tensor) -> torch.Tensor:
        """Scores from first-layer pre-activations (user + item + edge parts, without bias)."""
        return self.head(torch.relu(pre + self.bias)).squeeze(-1)

    def combo_scores(self, parts: list[torch.Tensor], rows: list[torch.Tensor]) -> torch.Tensor:
        """Scores [M] of M combinations: `rows` = (user, item, edge) row indices [M] into the
        sides' first-layer `parts` (`part` of each side's distinct code tuples). Without a
        gradient, on the CPU, slices of 4,096 rows are summed in place: their [slice, hidden]
        pre-activations stay in the CPU cache, 3-4x faster than whole [M, hidden] tensors
        (bench/bench_statmlp_scoring.py), with the sums in the same order."""
        n, h0 = len(rows[0]), self.bias.shape[0]
        fast = (not torch.is_grad_enabled() and self.bias.device.type == "cpu"
                and all(p.shape[-1] == h0 for p in parts))
        step = 1 << 12 if fast else 1 << 16
        if not fast:
            return torch.cat([self.head_scores(sum(p[r[lo:lo + step]]
                                                   for p, r in zip(parts, rows, strict=True)))
                              for lo in range(0, max(n, 1), step)])
        out = self.bias.new_empty(n)
        for lo in range(0, n, step):
            sl = slice(lo, lo + step)
            # the order of the sums of head_scores: ((user + item) + edge) + bias
            pre = parts[0].index_select(0, rows[0][sl]) + parts[1].index_select(0, rows[1][sl])
            pre += parts[2].index_select(0, rows[2][sl])
            pre += self.bias
            out[sl] = self.head(pre.relu_()).squeeze(-1)
        return out

    # ---------------------------------------------------------------------- two_tower parts
    def tower(self, side: str, codes: torch.Tensor) -> torch.Tensor:
        """MLP_side(codes) [..., out]."""
        return self.towers[side](self.first[side](codes) + self.biases[side])

    def edge_term(self, codes: torch.Tensor) -> torch.Tensor:
        """w · MLP_e(edge codes) [...] (0 without edge fields)."""
        if "edge" not in self.first:
            return codes.new_zeros(codes.shape[:-1], dtype=torch.float32)
        return self.edge_out(self.tower("edge", codes)).squeeze(-1)

    # ----------------------------------------------------------------------------- pairs
    def forward(self, user_codes: torch.Tensor, item_codes: torch.Tensor,
                edge_codes: torch.Tensor) -> torch.Tensor:
        """Scores [...] of aligned pairs: codes [..., F_side] each."""
        if self.architecture == "pair_mlp":
            pre = (self.part("user", user_codes) + self.part("item", item_codes)
                   + self.part("edge", edge_codes))
            return self.head_scores(pre)
        return ((self.tower("user", user_codes) * self.tower("item", item_codes)).sum(-1)
                + self.edge_term(edge_codes))
