"""`recx run` carries the gated zero-shot blend with Pop as a setting of its own."""

from __future__ import annotations

import pytest

from recx.errors import ConfigError
from recx.eval.interpolation import ZERO_SHOT_GATED
from recx.stages.run import plan_steps, results_table
from tests.conftest import compose


def test_plan_gates_each_listed_model_against_pop(tmp_path):
    cfg = compose("run", ["experiment=run_tiny", "plan.zero_shot=[preprec]",
                          "plan.zero_shot_gated=[preprec,statmlp]", "plan.in_domain=[]",
                          "plan.interpolate=[]"], root=tmp_path)
    steps = [(s.stage, s.model, s.overrides) for s in plan_steps(cfg)]
    assert [(a, b) for a, b, _ in steps] == [
        ("pretrain", "preprec"), ("transfer", "preprec"), ("interpolate", "preprec"),
        ("pretrain", "statmlp"), ("interpolate", "statmlp")]
    blend = steps[2][2]
    assert {"model=preprec", "base=pop", "interpolate.select=gated", "source=[tiny]",
            "target=tiny_b", "seed=0", "train=fast"} <= set(blend)
    # the tag comes from the interpolate stage itself, so the same command names it alike
    assert not any(o.startswith("tag=") for o in blend)


def test_pop_cannot_be_gated_against_itself(tmp_path):
    cfg = compose("run", ["experiment=run_tiny", "plan.zero_shot_gated=[pop]"], root=tmp_path)
    with pytest.raises(ConfigError, match="nothing to transfer"):
        plan_steps(cfg)


def row(setting, model, base=None, tag=None, alpha=None, seed=0, ndcg=0.1, selected=None):
    return {"status": "ok", "setting": setting, "model": model, "mode": None, "base": base,
            "tag": tag, "alpha": alpha, "selected": selected, "seed": seed, "split": "test",
            "slice": "all", "policy": True, "protocol": "loo/full/mask=on/ties=pessimistic",
            "NDCG@10": ndcg}


def test_results_table_shows_the_gated_blend_as_its_own_setting():
    rows = [row("zero_shot", "preprec", ndcg=0.05), row("zero_shot", "pop", ndcg=0.08),
            row("interpolate", "preprec", "pop", ZERO_SHOT_GATED, 0.4, 0, 0.10, True),
            row("interpolate", "preprec", "pop", ZERO_SHOT_GATED, 0.0, 1, 0.08, True),
            row("interpolate", "preprec", "pop", ZERO_SHOT_GATED, 0.4, 0, 0.09, False),
            row("interpolate", "preprec", "sasrec", alpha=0.3, ndcg=0.2, selected=True)]
    t = results_table(rows)
    assert list(t["setting"]) == ["zero_shot", "zero_shot", ZERO_SHOT_GATED, "interpolate"]
    gated = t[t["setting"] == ZERO_SHOT_GATED].iloc[0]
    # two seeds: the selected rows only, averaged; α* 0.4 on one seed, Pop alone on the other
    assert gated["NDCG@10"] == pytest.approx(0.09) and gated["alpha*"] == pytest.approx(0.2)
    assert gated["base"] == "pop" and gated["n_seeds"] == 2
    assert "tag" not in t  # no other tagged runs
