"""Post-hoc score interpolation (EVALUATION §7): per-user normalisation over the candidate set,
s_α = α·ŝ_T + (1 − α)·ŝ_D on a grid, α* chosen on validation (ties → the smaller α).

`gated_alpha` is a recx option (`interpolate.select=gated`): on small validation splits the
best α of a 21-point grid often wins by noise, so it keeps α* only where a paired bootstrap over
the validation users finds its gain over the base model significant."""

from __future__ import annotations

import numpy as np
import torch

from recx.errors import ConfigError

# The tag of a gated blend of a pre-trained model with Pop counted on the target: nothing is
# trained on the target, so it is a zero-shot recommender; it falls back to Pop alone wherever the
# transferred model's gain on validation is not significant.
ZERO_SHOT_GATED = "zero_shot_gated"


def normalise(s: torch.Tensor, masked: torch.Tensor, how: str) -> torch.Tensor:
    """Normalise each user's scores over its unmasked candidates. s [B, C] with -inf masked."""
    if how == "none":
        return s
    return _normalised(s, masked, how).masked_fill(masked, -torch.inf)


def _normalised(s: torch.Tensor, masked: torch.Tensor, how: str) -> torch.Tensor:
    """`normalise` with the masked entries left at the value the same normalisation gives them
    (their own scores are finite wherever they are items)."""
    keep = ~masked
    if how == "none":
        return s
    if how in ("zscore", "minmax"):
        return _scaled(s, *_row_stats(s, keep, how))
    if how == "rank":
        # percentile rank among the candidates; ties are broken by item id (stable sort)
        n = keep.sum(1, keepdim=True).clamp_min(1)
        filled = torch.where(keep, s, torch.full_like(s, -torch.inf))
        order = filled.argsort(dim=1, stable=True)
        ranks = torch.empty_like(order, dtype=torch.float32)
        ranks.scatter_(1, order, torch.arange(s.shape[1], device=s.device, dtype=torch.float32)
                       .expand_as(order).contiguous())
        n_masked = masked.sum(1, keepdim=True)
        return (ranks - n_masked) / n.float()
    raise ConfigError(f"interpolate.norm={how!r}", hint="use zscore, minmax, rank or none")


def _row_stats(s: torch.Tensor, keep: torch.Tensor, how: str) -> tuple:
    """Each row's (shift, scale) [B, 1] over its kept entries: (mean, std) under zscore,
    (min, max − min) under minmax."""
    if how == "zscore":
        n = keep.sum(1, keepdim=True).clamp_min(1)
        mean = torch.where(keep, s, torch.zeros_like(s)).sum(1, keepdim=True) / n
        var = (torch.where(keep, (s - mean) ** 2, torch.zeros_like(s))).sum(1, keepdim=True) / n
        return mean, var.sqrt()
    lo = torch.where(keep, s, torch.full_like(s, torch.inf)).min(1, keepdim=True).values
    hi = torch.where(keep, s, torch.full_like(s, -torch.inf)).max(1, keepdim=True).values
    return lo, hi - lo


def _scaled(s: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(s − shift) / scale elementwise; 0 where a row is constant."""
    return torch.where(scale < 1e-12, torch.zeros_like(s), (s - shift) / scale.clamp_min(1e-12))


def blender(alphas, how: str):
    """The blends themselves: [2, B, C] (transferred, base) → [A, B, C]. The definition of s_α;
    the evaluator ranks through `Blend.counts`, which never holds the A blends at once."""
    a = torch.tensor([float(x) for x in alphas])

    def post(s: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        t, d = _zero_masked(s, masked, how)
        al = a.to(s.device)[:, None, None]
        out = al * t[None] + (1 - al) * d[None]
        return out.masked_fill(masked[None], -torch.inf)

    return post


def _zero_masked(s, masked, how):
    t = normalise(s[0], masked, how)
    d = normalise(s[1], masked, how)
    return (torch.where(masked, torch.zeros_like(t), t),
            torch.where(masked, torch.zeros_like(d), d))


class Blend:
    """Ranks under every blend of the α grid, counted block by block.

    Materialising the A blends of a batch ([A, B, C], 21 × the scores) made ranking them cost
    several passes through memory per α. `counts` forms each blend of one [rows, cols] block of
    the two normalised score matrices in buffers that stay in cache, compares it with the
    target's blended score and keeps only the counts: the same float operations in the same
    order as `blender`, hence the same ranks, ties included."""

    def __init__(self, alphas, how: str, rows: int = 32, cols: int = 1024):
        self.alphas = torch.tensor([float(x) for x in alphas])
        self.how, self.rows, self.cols = how, rows, cols
        normalise(torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.bool), how)  # check `how`
        self._stats = None, []  # (candidates, row statistics) of the last `counts`

    def __call__(self, s, masked, tcol, strict) -> torch.Tensor:
        """The evaluator's count (`recx.eval.counting.CountFn`), with `values` beside it."""
        return self.counts(s, masked, tcol, strict)

    def counts(self, s: torch.Tensor, masked: torch.Tensor, tcol: torch.Tensor,
               strict: bool) -> torch.Tensor:
        """s [2, B, C] (transferred, base; −∞ at masked) → [A, B]: how many candidates score above
        each user's target (`strict`) or at least as high, the target included."""
        a = self.alphas.to(s.device)
        b = 1 - a
        n_b, n_c = s.shape[1:]
        out = torch.zeros(len(a), n_b, dtype=torch.int64, device=s.device)
        compare = torch.gt if strict else torch.ge
        r, c = min(self.rows, n_b), min(self.cols, n_c)
        x = s.new_empty(r, c)
        y = s.new_empty(r, c)
        hit = torch.empty(r, c, dtype=torch.bool, device=s.device)
        stats = []
        for r0 in range(0, n_b, r):
            r1 = min(r0 + r, n_b)
            # normalised a few users at a time: each user's row is normalised on its own, and
            # the temporaries of the normalisation stay in cache too
            t, d = self._block(s[:, r0:r1], masked[r0:r1], stats)
            rows = torch.arange(r1 - r0, device=s.device)
            own = tcol[r0:r1]
            tv = a[:, None] * t[rows, own][None] + b[:, None] * d[rows, own][None]  # [A, rows]
            # a masked candidate blends to exactly 0 here (`blender` then sets it to −∞): count
            # it as 0, then move each row's masked ones from 0's side of the target to −∞'s
            n_masked = masked[r0:r1].sum(1)
            out[:, r0:r1] += n_masked * (compare(torch.full_like(tv, -torch.inf), tv).long()
                                         - compare(torch.zeros_like(tv), tv).long())
            for c0 in range(0, n_c, c):
                c1 = min(c0 + c, n_c)
                tb, db = t[:, c0:c1], d[:, c0:c1]
                xb, yb, hb = x[:r1 - r0, :c1 - c0], y[:r1 - r0, :c1 - c0], hit[:r1 - r0, :c1 - c0]
                for i in range(len(a)):
                    torch.mul(tb, a[i], out=xb)
                    torch.mul(db, b[i], out=yb)
                    compare(xb.add_(yb), tv[i, :, None], out=hb)
                    out[i, r0:r1] += hb.sum(1)
        if stats:  # for `values`, asked next about the same candidates
            self._stats = masked, [torch.cat(x) for x in zip(*stats, strict=True)]
        return out

    def _block(self, s: torch.Tensor, masked: torch.Tensor, stats: list) -> tuple:
        """Both models of a block of rows normalised, 0 at masked entries (as `blender`); the
        rows' statistics appended to `stats`."""
        if self.how not in ("zscore", "minmax"):
            return _zero_masked(s, masked, self.how)
        keep = ~masked
        st = [*_row_stats(s[0], keep, self.how), *_row_stats(s[1], keep, self.how)]
        stats.append(st)
        zero = torch.zeros_like(s[0])
        return (torch.where(masked, zero, _scaled(s[0], st[0], st[1])),
                torch.where(masked, zero, _scaled(s[1], st[2], st[3])))

    def values(self, s: torch.Tensor, masked: torch.Tensor, tcol: torch.Tensor,
               rows: torch.Tensor, items: torch.Tensor) -> tuple | None:
        """The blends `counts` compares, of each user's target [A, B] and of the items (rows,
        items) [A, P], each model normalised over the candidates `masked` leaves — so an item
        outside them gets the value the same normalisation gives it, and the other candidate
        rule ranks the same blend. None under norm=rank: a rank is only defined among the
        candidates."""
        if self.how == "rank":
            return None
        a = self.alphas.to(s.device)[:, None]
        b = 1 - a
        own = torch.arange(s.shape[1], device=s.device)
        if self.how == "none":
            tt, ti, dt, di = s[0, own, tcol], s[0, rows, items], s[1, own, tcol], s[1, rows, items]
        else:
            if self._stats[0] is not masked:  # `counts` was not asked about these candidates
                self.counts(s.masked_fill(masked[None], -torch.inf), masked, tcol, True)
            sh0, sc0, sh1, sc1 = (x[:, 0] for x in self._stats[1])
            tt, ti = _scaled(s[0, own, tcol], sh0, sc0), _scaled(s[0, rows, items], sh0[rows],
                                                                 sc0[rows])
            dt, di = _scaled(s[1, own, tcol], sh1, sc1), _scaled(s[1, rows, items], sh1[rows],
                                                                 sc1[rows])
        return a * tt[None] + b * dt[None], a * ti[None] + b * di[None]


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
