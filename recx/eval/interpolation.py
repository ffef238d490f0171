"""Post-hoc score interpolation (EVALUATION §7): per-user normalisation over the candidate set,
s_α = α·ŝ_T + (1 − α)·ŝ_D on a grid, α* chosen on validation (ties → the smaller α).

`gated_alpha` is a recx option (`interpolate.select=gated`): on small validation splits the
best α of a 21-point grid often wins by noise, so it keeps α* only where a paired bootstrap over
the validation users finds its gain over the base model significant."""

from __future__ import annotations

import numpy as np
import torch

from recx.errors import ConfigError


def normalise(s: torch.Tensor, masked: torch.Tensor, how: str) -> torch.Tensor:
    """Normalise each user's scores over its unmasked candidates. s [B, C] with -inf masked."""
    keep = ~masked
    n = keep.sum(1, keepdim=True).clamp_min(1)
    x = torch.where(keep, s, torch.zeros_like(s))
    if how == "none":
        return s
    if how == "zscore":
        mean = x.sum(1, keepdim=True) / n
        var = (torch.where(keep, (s - mean) ** 2, torch.zeros_like(s))).sum(1, keepdim=True) / n
        std = var.sqrt()
        out = torch.where(std < 1e-12, torch.zeros_like(s), (s - mean) / std.clamp_min(1e-12))
    elif how == "minmax":
        lo = torch.where(keep, s, torch.full_like(s, torch.inf)).min(1, keepdim=True).values
        hi = torch.where(keep, s, torch.full_like(s, -torch.inf)).max(1, keepdim=True).values
        rng = hi - lo
        out = torch.where(rng < 1e-12, torch.zeros_like(s), (s - lo) / rng.clamp_min(1e-12))
    elif how == "rank":
        # percentile rank among the candidates; ties are broken by item id (stable sort)
        filled = torch.where(keep, s, torch.full_like(s, -torch.inf))
        order = filled.argsort(dim=1, stable=True)
        ranks = torch.empty_like(order, dtype=torch.float32)
        ranks.scatter_(1, order, torch.arange(s.shape[1], device=s.device, dtype=torch.float32)
                       .expand_as(order).contiguous())
        n_masked = masked.sum(1, keepdim=True)
        out = (ranks - n_masked) / n.float()
    else:
        raise ConfigError(f"interpolate.norm={how!r}", hint="use zscore, minmax, rank or none")
    return out.masked_fill(masked, -torch.inf)


def blender(alphas, how: str):
    """A post-hook for the evaluator: [2, B, C] (transferred, base) → [A, B, C] blends."""
    a = torch.tensor([float(x) for x in alphas])

    def post(s: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        t = normalise(s[0], masked, how)
        d = normalise(s[1], masked, how)
        t = torch.where(masked, torch.zeros_like(t), t)
        d = torch.where(masked, torch.zeros_like(d), d)
        al = a.to(s.device)[:, None, None]
        out = al * t[None] + (1 - al) * d[None]
        return out.masked_fill(masked[None], -torch.inf)

    return post


def select_alpha(alphas, valid_scores) -> int:
    """Index of α*: the best validation score; ties go to the smaller α (listed first)."""
    scores = np.asarray(valid_scores, dtype=np.float64)
    order = np.argsort(np.asarray(alphas, dtype=np.float64), kind="stable")
    best = order[np.argmax(scores[order])]
    return int(best)


def gain_lower_bound(blend: np.ndarray, base: np.ndarray, confidence: float, resamples: int,
                     rng: np.random.Generator) -> float:
    """Paired bootstrap over users: the (1 − confidence) quantile of the mean per-user gain of
    `blend` over `base` (per-user metric values of the same users, in the same order)."""
    diff = np.asarray(blend, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if not len(diff):
        return 0.0
    means = np.empty(resamples)
    block = max(1, 4_000_000 // len(diff))  # resamples per [block, n] index draw: bounded memory
    for lo in range(0, resamples, block):
        idx = rng.integers(0, len(diff), size=(min(block, resamples - lo), len(diff)))
        means[lo:lo + len(idx)] = diff[idx].mean(1)
    return float(np.quantile(means, 1.0 - confidence))


def gated_alpha(alphas, valid_scores, per_user, base_index: int, confidence: float,
                resamples: int, rng: np.random.Generator) -> tuple[int, float | None]:
    """α* as `select_alpha`, kept only when its validation gain over the base (α = 0) is
    significant: the paired bootstrap's lower bound at `confidence` is above zero; else the
    base alone. `per_user(i)` gives the per-user validation metric of grid point i.
    Returns (index, lower bound or None when α* is the base already)."""
    best = select_alpha(alphas, valid_scores)
    if best == base_index:
        return best, None
    bound = gain_lower_bound(per_user(best), per_user(base_index), confidence, resamples, rng)
    return (best if bound > 0 else base_index), bound
