"""PrepRec through the stages, in-process: pretrain on two sources, zero-shot transfer, few-shot
finetune and interpolation with SASRec on the tiny domains (one short epoch each)."""

from __future__ import annotations

import json

import pytest

import recx.stages.blending as blending
from recx.stages import execute
from tests.conftest import CONF, assert_valid_rows, compose

pytestmark = [pytest.mark.skipif(
    not all((CONF / "dataset" / f"{n}.yaml").exists() for n in ("tiny", "tiny_b")),
    reason="the tiny dataset configs are not available"),
    pytest.mark.usefixtures("one_torch_thread")]


def stage(name, overrides, root):
    cfg = compose(name, [*overrides, "progress=false", "text=hashing"], root=root)
    rows = execute(cfg, root / "runs" / name).rows
    assert_valid_rows(rows, name)  # the metrics.json schema (EVALUATION §6)
    return rows


def test_preprec_stages_on_tiny(tmp_path, monkeypatch):
    common = ["model=preprec", "train=fast", "model.max_len=20", "source=[tiny,tiny_b]"]
    rows = stage("pretrain", common, tmp_path)
    assert {r["target"] for r in rows} == {"tiny", "tiny_b"}  # validation on both sources
    target = ["target=tiny_b"]
    rows = stage("transfer", [*common, *target], tmp_path)
    test = next(r for r in rows if r["split"] == "test")
    assert test["setting"] == "zero_shot" and test["paper_compat"] == []
    assert 0.0 <= test["NDCG@10"] <= 1.0
    rows = stage("finetune", [*common, *target], tmp_path)
    assert {r["setting"] for r in rows} == {"finetune"}
    # few-shot: the spec's 5 epochs, no validation between them, the end state kept
    fit = next(p for p in tmp_path.rglob("fit.json") if "finetune" in p.parts)
    history = json.loads(fit.read_text())["history"]
    assert len(history) == 5 and all("valid" not in row for row in history)
    stage("train", ["model=sasrec", "dataset=tiny_b", "train=fast"], tmp_path)
    curves = []  # what α* is chosen from: the validation curve, never the test one
    choose = blending.select_alpha
    monkeypatch.setattr(blending, "select_alpha",
                        lambda alphas, curve: curves.append(list(curve)) or choose(alphas, curve))
    rows = stage("interpolate", [*common, *target, "base=sasrec"], tmp_path)
    by_split = {s: [r["NDCG@10"] for r in sorted(rows, key=lambda r: r["alpha"])
                    if r["split"] == s and r["slice"] == "all" and r["policy"]]
                for s in ("valid", "test")}
    assert curves[0] == pytest.approx(by_split["valid"]) and curves[0] != by_split["test"]
    # valid + test, each under the policy's candidates and the other rule's
    assert sum(r["selected"] is True for r in rows if r["slice"] == "all") == 4
    assert all(r["paper_compat"] == [] for r in rows)  # reports keep compat blends apart
    assert (tmp_path / "runs" / "interpolate" / "alpha_curve.png").exists()
    # the significance-gated α: its own tag; α* stays only with a positive lower bound
    rows = stage("interpolate", [*common, *target, "base=sasrec", "interpolate.select=gated",
                                 "interpolate.holdout_check=true"], tmp_path)
    chosen = [r for r in rows if r["selected"] is True and r["slice"] == "all" and r["policy"]]
    assert {r["tag"] for r in rows} == {"alpha_gated"} and len(chosen) == 2
    # holdout check: α from half A of the validation users, scored on half B beside the base
    grid = sorted({r["alpha"] for r in rows})
    assert chosen[0]["holdout_alpha_a"] in grid and chosen[0]["holdout_alpha_b"] in grid
    assert 0 <= chosen[0]["holdout_b_score"] <= 1 and 0 <= chosen[0]["holdout_b_base_score"] <= 1
    bound = chosen[0]["alpha_gain_lower_bound"]
    assert chosen[0]["alpha"] == 0.0 or bound > 0
    # every paper-compat switch (a checkpoint of its own) under the sampled protocol
    compat = ["model=preprec", "train=fast", "model.max_len=20", "source=tiny",
              "model.paper_compat=true"]
    stage("pretrain", compat, tmp_path)
    rows = stage("transfer", [*compat, *target, "eval=sampled100"], tmp_path)
    assert set(rows[0]["paper_compat"]) == {"year_reset_periods", "argsort_time",
                                             "coarse_index_for_target_fine",
                                             "last_epoch_as_best"}
    assert "sampled" in rows[0]["protocol"]
