"""The report views that explain a transfer matrix (`report.view=transferability|advisor`) and
the source advisor, on a hand-made matrix whose gains follow one diagnostic exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recx.diagnostics.advisor import fit, leave_one_target_out, rank_candidates
from recx.diagnostics.explain import (
    bootstrap_ci,
    correlations,
    load_diagnostics,
    spearman,
    transfer_cells,
)
from recx.stages.common import Context
from recx.stages.report import run as report
from tests.conftest import compose

FULL = "loo/full/mask=on/ties=pessimistic"
POP = {"t1": 0.10, "t2": 0.20, "t3": 0.05, "t4": 0.08}
SASREC = {"t1": 0.30, "t2": 0.25, "t3": 0.10, "t4": 0.16}
TV = {"a": 0.1, "b": 0.4, "c": 0.7}  # source a is closest to every target ...
SIZE = {"a": 4.0, "b": 5.0, "c": 6.0}  # ... and the smallest


def tv(source, target):
    return TV[source] + 0.05 * int(target[1])


def zero_shot(source, target):
    """log(zero-shot / Pop) = 1 − 2 · tv: the gain falls with the input distance."""
    return POP[target] * math.exp(1.0 - 2.0 * tv(source, target))


def row(run_dir, **kw):
    base = {"status": "ok", "stage": "transfer", "setting": "zero_shot", "mode": None,
            "base": None, "split": "test", "slice": "all", "seed": 0, "alpha": None,
            "selected": None, "protocol": FULL, "policy": True, "tag": None,
            "user_fraction": 1.0, "finished_at": "2026-01-01T00:00:00", "run_dir": str(run_dir)}
    return {**base, **kw}


def write(run_dir: Path, rows=None, diag=None, pair=None):
    run_dir.mkdir(parents=True, exist_ok=True)
    if rows is not None:
        (run_dir / "metrics.json").write_text(json.dumps({"schema_version": 1, "rows": rows}))
    if diag is not None:
        (run_dir / "diagnostics.json").write_text(json.dumps(diag))
        (run_dir / "diagnostics_pair.json").write_text(json.dumps(pair))


def diag_of(source, target):
    return {"input.pos.tv": tv(source, target), "size.log10_train_events.source": SIZE[source],
            "activity.item_gini.target": 0.1 * int(target[1])}


@pytest.fixture
def matrix(tmp_path):
    runs = tmp_path / "outputs" / "runs"
    for target in POP:
        d = runs / f"pop_{target}"
        write(d, [row(d, stage="train", setting="in_domain", model="pop", source=None,
                      target=target, **{"NDCG@10": POP[target]})])
        for seed in (0, 1):  # SASRec: the mean of its seeds is the reference
            d = runs / f"sasrec_{target}_{seed}"
            write(d, [row(d, stage="train", setting="in_domain", model="sasrec", source=None,
                          target=target, seed=seed,
                          **{"NDCG@10": SASREC[target] * (0.9 if seed else 1.1)})])
        for source in TV:
            d = runs / f"preprec_{source}_{target}"
            pair = {"model": "preprec", "source": source, "target": target, "seed": 0}
            m = {"NDCG@10": zero_shot(source, target)}
            if (source, target) == ("b", "t4"):  # metrics here, diagnostics from `recx diagnose`
                write(d, [row(d, model="preprec", source=source, target=target, **m)])
                write(runs / "diagnose_b_t4", diag=diag_of(source, target), pair=pair)
            else:
                write(d, [row(d, model="preprec", source=source, target=target, **m),
                          row(d, model="preprec", source=source, target=target, split="valid",
                              **m)], diag_of(source, target), pair)
    # the gated blend on t1 from a: α* = 0.5 on one seed, Pop alone (α* = 0) on the other
    d = runs / "gated_a_t1"
    write(d, [row(d, stage="interpolate", setting="interpolate", model="preprec", base="pop",
                  source="a", target="t1", seed=s, alpha=a, selected=True,
                  tag="zero_shot_gated", **{"NDCG@10": v})
              for s, a, v in ((0, 0.5, 0.2), (1, 0.0, POP["t1"]))])
    # a candidate source with diagnostics and no transfer yet
    write(runs / "diagnose_d_t1", diag={**diag_of("a", "t1"), "input.pos.tv": 0.0},
          pair={"model": "preprec", "source": "d", "target": "t1", "seed": 0})
    return tmp_path


def cells_of(root: Path) -> pd.DataFrame:
    from recx.stages.report_rows import collect, select

    frame = select(collect([root / "outputs" / "runs" / "**" / "metrics.json"]),
                   {"split": "test"})
    diags = load_diagnostics([root / "outputs" / "runs" / "**" / "diagnostics.json"])
    return transfer_cells(frame, diags, ["NDCG@10"])


def test_spearman_and_its_interval_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks 1 2 3 4 against 1 3 2 4: 1 − 6 · (0 + 1 + 1 + 0) / (4 · 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    lo, hi = bootstrap_ci(np.arange(10), np.arange(10) ** 2, 200, 0.95,
                          np.random.default_rng(0))
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # every resample is monotone


def test_cells_join_gains_references_and_diagnostics(matrix):
    cells = cells_of(matrix).set_index(["source", "target"])
    assert len(cells) == 12 and set(cells["model"]) == {"preprec"}
    c = cells.loc[("a", "t1")]
    assert c["pop:NDCG@10"] == pytest.approx(0.10)
    assert c["sasrec:NDCG@10"] == pytest.approx(0.30)  # mean of 0.33 and 0.27
    assert c["gain_pop:NDCG@10"] == pytest.approx(math.exp(1 - 2 * 0.15) - 1)
    assert c["gain_sasrec:NDCG@10"] == pytest.approx(0.1 * math.exp(0.7) / 0.3 - 1)
    assert c["input.pos.tv"] == pytest.approx(0.15)
    # the gated blend of its seeds: mean NDCG, mean α*, kept on one seed of two
    assert c["gated:NDCG@10"] == pytest.approx(0.15) and c["gated:alpha"] == 0.25
    assert c["gated:kept"] == 0.5 and c["gated:n_seeds"] == 2
    # diagnostics found through the pair when the run dir has none
    assert cells.loc[("b", "t4"), "input.pos.tv"] == pytest.approx(0.6)


def test_correlations_name_the_diagnostic_that_predicts_gain(matrix):
    corr = correlations(cells_of(matrix), ["NDCG@10"], resamples=200)
    pop = corr[corr["gain_over"] == "Pop"].set_index("diagnostic")
    assert pop.index[0] == "input.pos.tv"  # the strongest |ρ| first
    tv_row = pop.loc["input.pos.tv"]
    assert tv_row["rho"] == pytest.approx(-1.0) and tv_row["n_cells"] == 12
    assert tv_row["ci_low"] == pytest.approx(-1.0) and tv_row["significant"]
    assert tv_row["rho_within_target"] == pytest.approx(-1.0)
    assert tv_row["n_targets_within"] == 4
    # the source size orders every target's sources the other way round: within ρ = −1
    assert pop.loc["size.log10_train_events.source", "rho_within_target"] == pytest.approx(-1.0)


@pytest.mark.parametrize("method", ["single", "ridge"])
def test_leave_one_target_out_finds_the_best_source(matrix, method):
    per, s = leave_one_target_out(cells_of(matrix), "NDCG@10", method)
    assert s["targets"] == 4 and s["hits"] == 4 and s["rho"] == pytest.approx(1.0)
    assert s["regret"] == pytest.approx(0.0)
    assert set(per["advisor"]) == {"a"} and set(per["best"]) == {"a"}
    # the largest source (c) is always the worst; a random one of three is best 1/3 of the time
    assert s["largest_hits"] == 0 and s["largest_rho"] == pytest.approx(-1.0)
    assert s["random_hits"] == pytest.approx(4 / 3)
    # regret of c: log gains differ by 2 · (0.7 − 0.1) = 1.2; a random pick's: the mean, 0.6
    assert s["largest_regret"] == pytest.approx(1.2) and s["random_regret"] == pytest.approx(0.6)
    if method == "single":
        assert fit(cells_of(matrix), "NDCG@10", "single").describe() in (
            "−input.pos.tv", "−size.log10_train_events.source")


def test_candidates_are_ranked_with_a_predicted_gain(matrix):
    cells = cells_of(matrix)
    cand = pd.DataFrame([{"model": "preprec", "source": s, "target": "t9", **diag_of(s, "t1")}
                         for s in ("c", "a")])
    ranked = rank_candidates(cells, cand, "NDCG@10", "ridge")
    assert list(ranked["source"]) == ["a", "c"] and list(ranked["rank"]) == [1, 2]
    assert ranked["predicted_gain"].iloc[0] > ranked["predicted_gain"].iloc[1]


def test_report_views_write_their_tables_and_figures(matrix):
    def view(name):
        cfg = compose("report", [f"report.view={name}", "report.metrics=[NDCG@10]",
                                 "report.name=why", "report.diagnostics.resamples=100"],
                      root=matrix)
        return report(Context(cfg=cfg, run_dir=matrix / "r", device=torch.device("cpu")))

    res = view("transferability")
    assert res.rows == [] and not res.write
    out = matrix / "outputs" / "tables" / "why"
    md = (out / "transferability.md").read_text()
    # named by the candidate rule: targets of different policies pool
    assert "## preprec · `loo/full/mask=policy/ties=pessimistic` (12 cells, 4 targets)" in md
    assert "| input.pos.tv | **-1.00** | [-1.00, -1.00] | -1.00 (4) |" in md
    assert (out / "transferability_preprec_loo_full_mask_policy_ties_pessimistic.png").exists()
    gated = (out / "zero_shot_gated.md").read_text()
    assert "| t1 | a | 2 | 0.1000 |" in gated and "+50.0 %" in gated
    assert "above Pop in 1, equal in 0, below Pop in 0 of 1 cells" in gated
    assert "-25.5 %" in gated  # 0.15 against the transferred model alone, 0.1 · e^0.7
    assert len(pd.read_csv(out / "transferability_cells.csv")) == 12
    view("advisor")
    adv = (out / "advisor.md").read_text()
    assert "| advisor | 4 / 4 |" in adv and "| largest source | 0 / 4 |" in adv
    ranking = pd.read_csv(out / "advisor_ranking.csv")  # the candidate d of t1, never run
    assert list(ranking["source"]) == ["d"] and list(ranking["target"]) == ["t1"]


def test_cells_are_named_by_their_candidate_rule_so_policies_pool():
    from recx.diagnostics.explain import by_candidate_rule

    frame = pd.DataFrame({"protocol": ["loo/full/mask=on/ties=pessimistic",
                                       "loo/full/mask=off/ties=pessimistic",
                                       "loo/full/mask=off/ties=pessimistic",
                                       "loo/sampled:100:uniform/mask=n-a/ties=pessimistic"],
                          "policy": [True, True, False, True]})
    assert by_candidate_rule(frame)["protocol"].tolist() == [
        "loo/full/mask=policy/ties=pessimistic", "loo/full/mask=policy/ties=pessimistic",
        "loo/full/mask=other/ties=pessimistic",
        "loo/sampled:100:uniform/mask=n-a/ties=pessimistic"]
