"""Counting, for each user, the candidates that score above its target: the evaluator's ranks
come from these counts (recx/eval/evaluator.py), so a scorer with many variants (an
interpolation's α grid, recx/eval/interpolation.py) can count them without holding every
variant's scores, and the other candidate rule can be counted from the policy's pass."""

from __future__ import annotations

from collections.abc import Callable

import torch

# count(scores [V, B, C] with -inf at masked entries, masked [B, C], target columns [B],
#       strict) → [V', B]: how many candidates score above each target (strict) or at least as
# high (the target included). Ranks come from these counts, so a scorer with many variants
# (an interpolation's α grid) can count them without holding every variant's scores.
# A count may also say what it compares: `count.values(s, masked, tcol, rows, items)` → the
# compared values of each target [V', B] and of the items (rows, items) [V', P], under the
# candidates `masked` leaves, or None. Then the other candidate rule is counted from the same
# values (the history items that enter or leave the candidates), not counted again.
CountFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]


def target_counts(s: torch.Tensor, masked: torch.Tensor, tcol: torch.Tensor,
                  strict: bool) -> torch.Tensor:
    """The plain CountFn: one rank per score variant."""
    t = s[:, torch.arange(s.shape[1], device=s.device), tcol].unsqueeze(-1)
    return ((s > t) if strict else (s >= t)).sum(-1)


def _plain_values(s, masked, tcol, rows, items):
    return s[:, torch.arange(s.shape[1], device=s.device), tcol], s[:, rows, items]


target_counts.values = _plain_values


def history_above(values, b: int, rows: torch.Tensor) -> tuple:
    """How many of each user's listed history items compare above its target (greater) and at
    least as high (at least), [V, B] each, from `values` = (targets [V, B], items [V, P])."""
    tv, hv = values
    ht = tv[:, rows]
    out = []
    for hit in (hv > ht, hv >= ht):
        n = torch.zeros(hit.shape[0], b, dtype=torch.int64, device=hit.device)
        out.append(n.index_add_(1, rows, hit.long()))
    return tuple(out)
