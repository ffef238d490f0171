"""`recx run` turns its plan into steps: order, seeds, and per-model overrides."""

from __future__ import annotations

from recx.stages.run import plan_steps
from tests.conftest import compose


def test_plan_steps_with_per_model_overrides(tmp_path):
    cfg = compose("run", ["experiment=run_tiny", "plan.seeds=[0]",
                          "plan.zero_shot=[preprec]", "plan.zero_shot_gated=[]",
                          "plan.in_domain=[sasrec]",
                          "plan.interpolate=[{model: preprec, base: sasrec}]",
                          "plan.model_overrides={preprec: ['model.optim.max_epochs=3'],"
                          " sasrec: ['model.optim.max_epochs=7']}"], root=tmp_path)
    steps = {(s.stage, s.model): s.overrides for s in plan_steps(cfg)}
    assert list(steps) == [("pretrain", "preprec"), ("transfer", "preprec"),
                           ("train", "sasrec"), ("interpolate", "preprec")]
    assert "model.optim.max_epochs=3" in steps["pretrain", "preprec"]
    assert "model.optim.max_epochs=3" in steps["transfer", "preprec"]
    assert "model.optim.max_epochs=7" in steps["train", "sasrec"]
    # the interpolation finds both checkpoints: the model's and the base's overrides, each
    # addressed to its own config node
    inter = steps["interpolate", "preprec"]
    assert "model.optim.max_epochs=3" in inter and "base.optim.max_epochs=7" in inter
    assert "model.optim.max_epochs=7" not in inter
