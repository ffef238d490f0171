"""interpolate.select=gated: α* is kept only when a paired bootstrap over the validation users
finds its gain over the base (α = 0) significant."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.eval.interpolation import gain_lower_bound, gated_alpha
from recx.stages.blending import check_select

ALPHAS = [0.0, 0.5, 1.0]


def test_a_constant_gain_has_itself_as_lower_bound():
    base = np.linspace(0, 0.5, 40)
    # every resample of a constant difference has mean 0.1 exactly
    assert np.isclose(gain_lower_bound(base + 0.1, base, 0.95, 200, np.random.default_rng(0)),
                      0.1)


def test_a_symmetric_difference_is_not_a_gain():
    base = np.zeros(100)
    blend = np.tile([1.0, -1.0], 50)  # mean gain 0: the lower bound must be below zero
    bound = gain_lower_bound(blend, base, 0.95, 2000, np.random.default_rng(0))
    # the bootstrap mean of ±1 over 100 users has std 0.1: the 5 % quantile ≈ −0.164
    assert -0.21 < bound < -0.12


def test_the_gate_keeps_a_consistent_gain_and_drops_a_lucky_one():
    rng = np.random.default_rng(1)
    base = (rng.random(500) < 0.2).astype(float)      # hits of the base model alone
    steady = np.maximum(base, rng.random(500) < 0.1)  # α = 0.5 adds hits and loses none
    per_user = {0: base, 1: steady, 2: base}
    scores = [v.mean() for v in per_user.values()]
    best, bound = gated_alpha(ALPHAS, scores, per_user.get, 0, 0.95, 1000, rng)
    assert best == 1 and bound > 0
    # one extra hit among 500 users: the best on valid, but not significantly
    lucky = base.copy()
    lucky[np.flatnonzero(base == 0)[:3]] = 1.0
    lucky[np.flatnonzero(base == 1)[:2]] = 0.0
    per_user = {0: base, 1: lucky, 2: base}
    scores = [v.mean() for v in per_user.values()]
    assert scores[1] > scores[0]
    best, bound = gated_alpha(ALPHAS, scores, per_user.get, 0, 0.95, 1000, rng)
    assert best == 0 and bound <= 0


def test_when_the_base_wins_already_no_bootstrap_is_needed():
    base = np.ones(10)
    per_user = {0: base, 1: base * 0.5, 2: base * 0.2}
    best, bound = gated_alpha(ALPHAS, [1.0, 0.5, 0.2], per_user.get, 0, 0.95, 100,
                              np.random.default_rng(0))
    assert (best, bound) == (0, None)


def test_bad_select_values_fail_before_any_scoring():
    with pytest.raises(ConfigError, match="argmax or gated"):
        check_select(OmegaConf.create({"select": "best"}), ALPHAS)
    with pytest.raises(ConfigError, match=r"0\.0 in interpolate\.alphas"):
        check_select(OmegaConf.create({"select": "gated"}), [0.5, 1.0])
    check_select(OmegaConf.create({"select": "gated"}), ALPHAS)  # fine
