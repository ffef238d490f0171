"""Exact top-k item lists, selected chunk by chunk together with scoring (EVALUATION §4).

Items are ordered by score descending, then by item id ascending, exactly, for the scores given
(a matmul's last bits may depend on how many users share a block; the selection never does).
Metrics never need this (they come from ranks); exported recommendations,
coverage and the GPU benchmark do.

Why not `torch.topk` on each score row: with 1M items the selection, not the matmul, dominates
(it reads every score through a radix select), and its order among ties is unspecified. Here
each user chunk's scores are reduced to the maximum of every group of `group` consecutive items
(one memory-bound pass), the k best groups are selected on that G-times smaller matrix, and the
final top-k is selected among the k · G items of those groups. That is exact: every top-k item
lies in a group whose maximum is at least the k-th score, and with ties broken by the smallest
group index the k selected groups contain the smallest-id items of any tie (groups are contiguous
id ranges). Both selections use integer keys that pack the score's order-preserving bit pattern
above the (inverted) id, so one `topk` call yields exactly "score desc, id asc".
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from recx.errors import EvalError

ScoreChunk = Callable[[int, int], torch.Tensor]  # (user lo, user hi) → scores [hi − lo, N]


def float_order_key(x: torch.Tensor) -> torch.Tensor:
    """int32 keys with the order of the float32 values (−0.0 and +0.0 equal; no NaN)."""
    bits = (x.float() + 0.0).view(torch.int32)  # + 0.0 turns −0.0 into +0.0
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def half_order_key(x: torch.Tensor) -> torch.Tensor:
    """int32 keys in [−2¹⁵, 2¹⁵) with the order of bf16/fp16 values."""
    bits = (x + 0.0).view(torch.int16).to(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFF, bits)


def _select(scores: torch.Tensor, ids: torch.Tensor, k: int, id_bound: int) -> torch.Tensor:
    """Column indices of the k best entries per row by (score desc, id asc), in that order.
    `ids` [B, C] or [C] are distinct ints in [0, id_bound) per row."""
    k = min(k, scores.shape[-1])
    ids = ids.expand_as(scores)
    if scores.dtype in (torch.bfloat16, torch.float16) and id_bound <= 2**16:
        key = half_order_key(scores) * 65536 + (65535 - ids.to(torch.int32))
    else:
        key = (float_order_key(scores).to(torch.int64) << 32) + (0xFFFFFFFF - ids.to(torch.int64))
    return key.topk(k, dim=-1, sorted=True).indices


def select_topk(scores: torch.Tensor, k: int, group: int = 128,
                first_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of each row of `scores` [B, N] (column j is item `first_id + j`).

    Returns (values [B, k] as float32, item ids [B, k] int64), ordered by score desc, id asc.
    """
    vals, ids, has_nan = _select_topk(scores, k, group, first_id)
    if has_nan:
        raise _nan_error()
    return vals, ids


def _select_topk(scores, k, group, first_id):
    """select_topk without the NaN check's device sync: also returns a 0-d NaN flag."""
    b, n = scores.shape
    k = min(k, n)
    dev = scores.device
    if group <= 1 or n <= 4 * k * group:  # small rows: one selection
        has_nan = torch.isnan(scores).any()
        col = _select(scores, torch.arange(n, device=dev), k, n)
    else:
        full = n // group * group
        # group maxima without copying: the full groups are a view, the tail group is reduced
        # apart (NaN propagates into a group's maximum, so checking the maxima suffices)
        gmax = scores[:, :full].view(b, full // group, group).amax(-1)
        if full < n:
            gmax = torch.cat([gmax, scores[:, full:].amax(-1, keepdim=True)], dim=1)
        has_nan = torch.isnan(gmax).any()
        n_groups = gmax.shape[1]
        best = _select(gmax, torch.arange(n_groups, device=dev), k, n_groups)  # [B, k]
        cand = (best[..., None] * group + torch.arange(group, device=dev)).reshape(b, -1)
        cand_s = scores.gather(1, cand.clamp_max(n - 1))
        if full < n:
            # the tail group's slots past N score -inf with ids >= N: every selected group holds
            # a real item, so k groups hold >= k real items, which win ties (smaller ids)
            cand_s = cand_s.masked_fill(cand >= n, -torch.inf)
        col = cand.gather(1, _select(cand_s, cand, k, n_groups * group))
    return scores.gather(1, col).float(), col + first_id, has_nan


def _nan_error() -> EvalError:
    return EvalError("NaN scores reached the top-k selection",
                     hint="the model diverged: lower the learning rate or check inputs")


def chunked_topk(score_chunk: ScoreChunk, n_users: int, k: int, *, user_chunk: int = 1024,
                 group: int = 128, first_id: int = 0,
                 out_device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per user, scoring `user_chunk` users at a time (only that [chunk, N] block lives).

    `score_chunk(lo, hi)` returns the scores of users lo..hi−1 over all items (it may mask
    entries with −inf). Returns (values [U, k] float32, ids [U, k] int64) on `out_device`.
    """
    vals, ids, nan_flags = [], [], []
    for lo in range(0, n_users, user_chunk):
        hi = min(lo + user_chunk, n_users)
        v, i, has_nan = _select_topk(score_chunk(lo, hi), k, group, first_id)
        vals.append(v.to(out_device))
        ids.append(i.to(out_device))
        nan_flags.append(has_nan)
    if not vals:
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.int64)
    if torch.stack(nan_flags).any():  # one device sync for all chunks
        raise _nan_error()
    return torch.cat(vals), torch.cat(ids)


def dot_topk(queries: torch.Tensor, items: torch.Tensor, k: int, *, user_chunk: int = 1024,
             group: int = 128, out_device: str | torch.device = "cpu",
             exclude_first: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of `queries` [U, d] · `items` [N, d]ᵀ (dot-product models: SASRec, GRU4Rec, …), in
    the tensors' dtype (bf16 on GPU). `exclude_first` masks item 0 (the padding row)."""

    def chunk(lo: int, hi: int) -> torch.Tensor:
        s = queries[lo:hi] @ items.T
        if exclude_first:
            s[:, 0] = -torch.inf
        return s

    return chunked_topk(chunk, len(queries), k, user_chunk=user_chunk, group=group,
                        out_device=out_device)


def reference_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition, for tests: a stable sort by score descending keeps ids ascending."""
    order = torch.sort(scores.float(), dim=1, descending=True, stable=True).indices[:, :k]
    return scores.gather(1, order).float(), order
