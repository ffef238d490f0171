"""Post-hoc interpolation (EVALUATION §7) on hand-worked scores: the per-user normalisations, the
blend's end points (α = 0 is the base model, α = 1 the transferred one), and α* as the best
validation score, ties to the smaller α (that the stage passes validation only is checked in
tests/smoke/test_preprec_smoke.py)."""

from __future__ import annotations

import math

import pytest
import torch

from recx.errors import ConfigError
from recx.eval.interpolation import Blend, blender, normalise, select_alpha

INF = math.inf
# one user, four candidates, the last masked (a training item, say)
T = torch.tensor([[1.0, 2.0, 3.0, 9.0]])  # transferred model
D = torch.tensor([[3.0, 2.0, 1.0, 9.0]])  # in-domain base
MASK = torch.tensor([[False, False, False, True]])
Z = math.sqrt(1.5)  # (3 - 2) / sqrt(2/3): z-score of 1, 2, 3 (population std)


def test_normalisations_by_hand():
    assert normalise(T, MASK, "zscore")[0].tolist() == pytest.approx([-Z, 0.0, Z, -INF])
    assert normalise(T, MASK, "minmax")[0].tolist() == pytest.approx([0.0, 0.5, 1.0, -INF])
    # percentile rank among the 3 unmasked candidates: 0, 1/3, 2/3
    assert normalise(T, MASK, "rank")[0].tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, -INF])
    assert normalise(T, MASK, "none") is T
    # a user whose scores are all equal gets zeros, not NaN
    flat = normalise(torch.tensor([[2.0, 2.0, 2.0, 0.0]]), MASK, "zscore")
    assert flat[0, :3].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError):
        normalise(T, MASK, "softmax")


def test_blend_end_points_are_the_two_models_and_the_middle_is_by_hand():
    out = blender([0.0, 0.25, 0.5, 1.0], "zscore")(torch.stack([T, D]), MASK)
    assert out.shape == (4, 1, 4)
    assert torch.equal(out[0], normalise(D, MASK, "zscore"))  # α = 0: the base exactly
    assert torch.equal(out[3], normalise(T, MASK, "zscore"))  # α = 1: the transferred exactly
    # α = 0.25: 0.25·(−Z, 0, Z) + 0.75·(Z, 0, −Z) = (Z/2, 0, −Z/2); the masked item stays −∞
    assert out[1, 0].tolist() == pytest.approx([Z / 2, 0.0, -Z / 2, -INF])
    assert out[2, 0, :3].tolist() == pytest.approx([0.0, 0.0, 0.0])  # opposite orders cancel


def test_alpha_star_is_the_best_validation_score_ties_to_the_smaller_alpha():
    assert select_alpha([0.0, 0.5, 1.0], [0.1, 0.3, 0.2]) == 1
    assert select_alpha([0.0, 0.5, 1.0], [0.3, 0.3, 0.3]) == 0
    # a grid listed out of order: the tie between 0.5 and 0.25 goes to 0.25 (index 2)
    assert select_alpha([1.0, 0.5, 0.25], [0.1, 0.4, 0.4]) == 2


@pytest.mark.parametrize("how", ["none", "zscore", "minmax"])
def test_end_points_rank_every_target_as_the_models_alone(how):
    """Metrics follow from the target's rank: at α = 0 and α = 1 every user's target has the rank
    the base / the transferred model gives it on its own (the normalisations keep the order)."""
    g = torch.Generator().manual_seed(0)
    t, d = torch.randn(6, 30, generator=g) * 5, torch.randn(6, 30, generator=g) + 2
    masked = torch.rand(6, 30, generator=g) < 0.2
    target = torch.arange(6) * 4 + 1
    masked[torch.arange(6), target] = False  # the target is never masked
    t, d = t.masked_fill(masked, -INF), d.masked_fill(masked, -INF)

    def rank(s):  # pessimistic 0-based rank of each user's target
        own = s[torch.arange(6), target][:, None]
        return ((s > own) | (s == own)).sum(1) - 1

    out = blender([0.0, 1.0], how)(torch.stack([t, d]), masked)
    assert torch.equal(rank(out[0]), rank(d)) and torch.equal(rank(out[1]), rank(t))


@pytest.mark.parametrize("how", ["none", "zscore", "rank"])
def test_blend_counts_equal_the_counts_of_the_materialised_blends(how):
    """Blend.counts forms each blend block by block (here 3 × 4 blocks of at most 4 × 8, the last
    ones partial) and must give exactly the counts of the blends `blender` materialises: ties
    included (scores on a coarse grid, so blends tie often), masked candidates never counted."""
    g = torch.Generator().manual_seed(1)
    s = (torch.randn(2, 10, 27, generator=g) * 2).round()
    masked = torch.rand(10, 27, generator=g) < 0.2
    masked[:, 0] = True  # the padding column
    tcol = torch.randint(1, 27, (10,), generator=g)
    masked[torch.arange(10), tcol] = False
    s = s.masked_fill(masked, -INF)
    alphas = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    full = blender(alphas, how)(s, masked)
    own = full[:, torch.arange(10), tcol].unsqueeze(-1)
    blend = Blend(alphas, how, rows=4, cols=8)
    assert torch.equal(blend.counts(s, masked, tcol, strict=True), (full > own).sum(-1))
    assert torch.equal(blend.counts(s, masked, tcol, strict=False), (full >= own).sum(-1))
    assert bool(((full == own).sum(-1) > 1).any())  # the example has ties to get right
    # by hand, user 0 at α = 0: the base's own count among its 26 − masked candidates
    base = normalise(s[1], masked, how)[0]
    assert int(blend.counts(s, masked, tcol, strict=False)[0, 0]) == int(
        (base >= base[tcol[0]]).sum())
