"""Diagnostics beside a transfer, `recx diagnose` without a checkpoint, and the gated zero-shot
blend with Pop (`recx interpolate base=pop interpolate.select=gated`): both parts ranked over
the target's one candidate set, in-process on the tiny domains."""

from __future__ import annotations

import json

import pytest
import torch

from recx.eval.interpolation import ZERO_SHOT_GATED
from recx.stages import execute
from tests.conftest import assert_valid_rows, compose

COMMON = ["model=preprec", "train=fast", "model.max_len=20", "source=tiny", "target=tiny_b"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stage(root, name, *overrides):
    cfg = compose(name, [*overrides, "progress=false", "text=hashing"], root=root)
    run_dir = root / "runs" / f"{len(list(root.glob('runs/*')))}_{name}"
    run_dir.mkdir(parents=True)
    rows = execute(cfg, run_dir).rows
    assert_valid_rows(rows, name)
    return rows, run_dir


def metrics_of(rows, split, policy, **where):
    out = [r for r in rows if r["split"] == split and r["slice"] == "all"
           and r["policy"] is policy and all(r.get(k) == v for k, v in where.items())]
    assert len(out) == 1, (split, policy, where, len(out))
    return {k: v for k, v in out[0].items() if "@" in k}


def test_diagnostics_and_the_gated_zero_shot_blend(tmp_path):
    stage(tmp_path, "pretrain", *COMMON[:-1])
    zero, run_dir = stage(tmp_path, "transfer", *COMMON)
    diag = json.loads((run_dir / "diagnostics.json").read_text())
    pair = json.loads((run_dir / "diagnostics_pair.json").read_text())
    assert (pair["model"], pair["source"], pair["target"]) == ("preprec", "tiny", "tiny_b")
    assert all(isinstance(v, float) for v in diag.values())
    assert {"activity.item_log_popularity_w1", "time.empty_coarse_share.target",
            "input.pos.tv_coarse", "input.cat.empty_coarse.target"} <= set(diag)
    # the same pair before any transfer, for a seed that has no checkpoint: the same values
    # (PrepRec's inputs do not depend on the seed), no weights needed
    none, diag_dir = stage(tmp_path, "diagnose", *[o for o in COMMON if "train=" not in o],
                           "seed=7")
    assert none == [] and json.loads((diag_dir / "diagnostics.json").read_text()) == diag

    pop, _ = stage(tmp_path, "transfer", "model=pop", "target=tiny_b")
    blend, _ = stage(tmp_path, "interpolate", *COMMON, "base=pop", "interpolate.select=gated")
    assert {r["tag"] for r in blend} == {ZERO_SHOT_GATED}
    assert {r["base"] for r in blend} == {"pop"} and {r["setting"] for r in blend} == {
        "interpolate"}
    # one candidate set per rule for both parts: α = 0 is Pop alone and α = 1 the transferred
    # model alone, metric for metric, under the domain's policy and under the other rule
    for policy in (True, False):
        for split in ("valid", "test"):
            assert metrics_of(blend, split, policy, alpha=0.0) == metrics_of(pop, split, policy)
            assert metrics_of(blend, split, policy, alpha=1.0) == metrics_of(zero, split, policy)
    chosen = metrics_of(blend, "valid", True, selected=True)
    floor = metrics_of(blend, "valid", True, alpha=0.0)
    assert chosen["NDCG@10"] >= floor["NDCG@10"]  # the gate never picks a loss on validation
    star = next(r for r in blend if r["selected"] and r["split"] == "test" and r["policy"])
    if star["alpha"] == 0.0:  # fell back: exactly Pop
        assert metrics_of(blend, "test", True, selected=True) == metrics_of(pop, "test", True)
    else:
        assert star["alpha_gain_lower_bound"] > 0


class _Transferred:
    """A stand-in for a transferred model whose signal is known: `oracle` puts each query's
    target above every other item of the target (all others tie), `inverse` below them."""

    def __init__(self, kind: str, n_items: int):
        from recx.models.base import Capabilities

        self.kind, self.n_items, self.name, self.max_len = kind, n_items, "preprec", 20
        self.capabilities = Capabilities(zero_shot=True)
        self.device = torch.device("cpu")
        self.weights_identity = None  # never cached

    query_order = None  # the hooks a stage calls on a model (recx.models.base.RecModel)

    def active_compat(self):
        return []

    def eval(self):
        return self

    def score_all(self, batch):
        s = torch.zeros(len(batch.targets), self.n_items + 1)
        s[torch.arange(len(s)), batch.targets.long()] = 1.0 if self.kind == "oracle" else -1.0
        return s


@pytest.mark.parametrize("kind", ["oracle", "inverse"])
def test_the_gate_keeps_signal_and_falls_back_to_pop_without_it(tmp_path, monkeypatch, kind):
    import recx.stages.interpolate as interpolate_stage

    monkeypatch.setattr(interpolate_stage, "transferred_model",
                        lambda ctx, target: (_Transferred(kind, target.n_items), None))
    pop, _ = stage(tmp_path, "transfer", "model=pop", "target=tiny_b")
    blend, _ = stage(tmp_path, "interpolate", *COMMON, "base=pop", "interpolate.select=gated")
    star = metrics_of(blend, "test", True, selected=True)
    floor = metrics_of(pop, "test", True)
    alpha = next(r["alpha"] for r in blend if r["selected"] and r["split"] == "test")
    if kind == "oracle":  # every blend with α > 0 lifts the target: kept, above Pop
        assert alpha > 0 and star["NDCG@10"] > floor["NDCG@10"]
    else:  # every blend with α > 0 lowers it: Pop alone, exactly
        assert alpha == 0.0 and star == floor
