"""UniSRec's item adaptor (models/unisrec.md §3): parametric whitening experts mixed by a gate.

`PWLayer` maps a frozen text vector x to W_k · (Dropout(x) − b_k). `MoEAdaptor` mixes G such
experts with softmax gate weights g = softmax(x · W_gate (+ noise in training)). As in the
original code (RUCAIBox/UniSRec `MoEAdaptorLayer`) the gate covers all experts — no top-k, no
load-balancing loss — and W_gate and W_noise start at zero, so the gate starts uniform. The
parameter names match the original's, so its checkpoints map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PWLayer(nn.Module):
    """Parametric whitening: lin(Dropout(x) − bias), bias ∈ R^in (zero at start), no lin bias."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, init_range: float = 0.02):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(in_dim))
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        nn.init.normal_(self.lin.weight, 0.0, init_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.dropout(x) - self.bias)


class MoEAdaptor(nn.Module):
    """v = Σ_k g_k(x) · PW_k(x) over `n_experts` whitening experts."""

    def __init__(self, n_experts: int, in_dim: int, out_dim: int, dropout: float,
                 noise_floor: float = 0.01, init_range: float = 0.02):
        super().__init__()
        self.experts = nn.ModuleList(PWLayer(in_dim, out_dim, dropout, init_range)
                                     for _ in range(n_experts))
        self.w_gate = nn.Parameter(torch.zeros(in_dim, n_experts))
        self.w_noise = nn.Parameter(torch.zeros(in_dim, n_experts))
        self.noise_floor = noise_floor

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """[..., G] softmax weights; in training the logits get noise ε·(softplus(x·W_noise) +
        floor), ε ~ N(0, 1)."""
        logits = x @ self.w_gate
        if self.training:
            std = F.softplus(x @ self.w_noise) + self.noise_floor
            logits = logits + torch.randn_like(logits) * std
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., in] → [..., out]."""
        g = self.gates(x)
        out = torch.stack([e(x) for e in self.experts], dim=-2)  # [..., G, out]
        return (g.unsqueeze(-1) * out).sum(dim=-2)
