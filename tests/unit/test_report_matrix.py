"""`recx report report.layout=matrix` (ARCHITECTURE §4.7): source × target tables per model and
setting, mean ± std over seeds with n, heatmaps and bar charts, protocols never mixed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from recx.stages.common import Context
from recx.stages.report import run as report
from tests.conftest import compose

FULL = "loo/full/mask=off/ties=pessimistic"
SAMPLED = "loo/sampled:100:uniform/mask=n-a/ties=random"


def row(model, source, target, seed, ndcg, protocol=FULL, setting="zero_shot", split="test"):
    return {"status": "ok", "stage": "transfer", "setting": setting, "model": model,
            "mode": None, "base": None, "source": source, "target": target, "split": split,
            "slice": "all", "seed": seed, "alpha": None, "selected": None, "protocol": protocol,
            "NDCG@10": ndcg, "finished_at": f"2026-01-01T00:00:{seed:02d}"}


def write_run(root: Path, name: str, rows: list[dict]) -> None:
    path = root / "outputs" / "multiruns" / "transfer" / "sweep" / name / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema_version": 1, "rows": rows}))


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    # preprec: a → t1 over seeds 0.10, 0.20, 0.30 (mean 0.2, sample std 0.1); a → t2 = 0.4, 0.4
    values = {("a", "t1"): [0.1, 0.2, 0.3], ("a", "t2"): [0.4, 0.4], ("a+b", "t1"): [0.5]}
    k = 0
    for (src, tgt), vals in values.items():
        for seed, v in enumerate(vals):
            write_run(tmp_path, f"{k}", [row("preprec", src, tgt, seed, v),
                                         row("preprec", src, tgt, seed, 0.9, split="valid")])
            k += 1
    # the same pair under the sampled protocol: never averaged with the full-ranking rows
    write_run(tmp_path, "s", [row("preprec", "a", "t1", 0, 0.7, protocol=SAMPLED)])
    write_run(tmp_path, "p", [row("pop", "a", "t1", s, 0.05) for s in range(2)])
    write_run(tmp_path, "i", [row("sasrec", None, "t1", 0, 0.3, setting="in_domain")])
    # an older duplicate of seed 0 (same identity): the newest row wins
    old = row("preprec", "a", "t1", 0, 0.99)
    old["finished_at"] = "2025-01-01T00:00:00"
    write_run(tmp_path, "old", [old])
    cfg = compose("report", ["report.layout=matrix", "report.metrics=[NDCG@10]",
                             "report.name=m"], root=tmp_path)
    res = report(Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")))
    return res, tmp_path / "outputs" / "tables" / "m"


def test_matrix_cells_are_mean_std_n_per_source_and_target(result):
    res, out = result
    md = (out / "results.md").read_text()
    full = md.split("### NDCG@10: preprec · zero_shot · test")[1].split("###")[0]
    assert FULL in full and SAMPLED not in full
    lines = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
             for ln in full.splitlines() if ln.startswith("| a")}
    assert lines["a"] == ["0.2000 ± 0.1000 (n=3)", "0.4000 ± 0.0000 (n=2)"]
    assert lines["a+b"] == ["0.5000 (n=1)", ""]  # one seed: no std; missing pair: empty
    rows = {(r["model"], r["source"], r["target"], r["protocol"]): r for r in res.rows}
    r = rows[("preprec", "a", "t1", FULL)]
    assert r["NDCG@10"] == pytest.approx(0.2) and r["NDCG@10_std"] == pytest.approx(0.1)
    assert r["n_seeds"] == 3 and r["stage"] == "report"
    assert rows[("preprec", "a", "t1", SAMPLED)]["NDCG@10"] == pytest.approx(0.7)


def test_one_table_and_figures_per_model_setting_and_protocol(result):
    _, out = result
    md = (out / "results.md").read_text()
    titles = [ln for ln in md.splitlines() if ln.startswith("### ")]
    assert len(titles) == 4  # preprec full, preprec sampled, pop, sasrec in-domain
    assert sum("preprec" in t for t in titles) == 2 and md.startswith("> sampled protocol")
    assert "(trained on target)" in md  # in-domain rows have no source
    heatmaps = sorted(out.glob("matrix_*.png"))
    bars = sorted(out.glob("bars_*.png"))
    assert len(heatmaps) == 4 and len(bars) == 4
    data = pd.read_csv(next(p for p in out.glob("bars_*.csv") if "sampled" not in p.name
                            and "preprec" in p.name))
    cell = data[(data["source"] == "a") & (data["target"] == "t1")].iloc[0]
    assert cell["mean"] == pytest.approx(0.2) and cell["std"] == pytest.approx(0.1)


def test_table_rows_split_by_identity_fields_that_vary(tmp_path):
    """Two sources, two user fractions and a tagged ablation of one model: a plain table
    report (rows setting, model, base) never averages them as seeds."""
    rows = []
    for seed in range(2):
        for src, frac, tag, v in (("a", 1.0, None, 0.2), ("b", 1.0, None, 0.4),
                                  ("a", 0.1, None, 0.1), ("a", 1.0, "text_only", 0.3)):
            r = row("idp", src, "t1", seed, v + 0.01 * seed, setting="finetune")
            rows.append({**r, "user_fraction": frac, "tag": tag})
    old = row("idp", "a", "t1", 0, 0.21, setting="finetune")  # a row from before the fields
    old["finished_at"] = "2025-01-01T00:00:00"
    write_run(tmp_path, "r", [old, *rows])
    cfg = compose("report", ["report.metrics=[NDCG@10]", "report.name=t",
                             "report.figures=false"], root=tmp_path)
    res = report(Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")))
    got = {(r["source"], r["user_fraction"], r["tag"]): (round(r["NDCG@10"], 4), r["n_seeds"])
           for r in res.rows}
    assert got == {("a", 1.0, None): (0.205, 2), ("b", 1.0, None): (0.405, 2),
                   ("a", 0.1, None): (0.105, 2), ("a", 1.0, "text_only"): (0.305, 2)}


def test_cells_pool_only_runs_that_differ_in_their_seed(tmp_path):
    """Seed 0 trained 51 epochs and seed 1 with train.max_epochs=4: two rows, each n=1, and
    the column that says what differs (from each run's saved config); seeds 0 and 2 of the
    default recipe are one cell."""
    for seed, epochs, v in ((0, None, 0.39), (1, 4, 0.17), (2, None, 0.41)):
        run_dir = tmp_path / "runs" / f"s{seed}"
        (run_dir / ".hydra").mkdir(parents=True)
        cfg = {"seed": seed, "model": {"name": "sasrec"},
               "train": {"max_epochs": epochs, "amp": "auto"}}
        (run_dir / ".hydra" / "config.yaml").write_text(json.dumps(cfg))
        r = row("sasrec", None, "t1", seed, v, setting="in_domain")
        r.update(run_dir=str(run_dir), experiment_hash="4" * 12 if epochs else "d" * 12,
                 overrides=[f"seed={seed}"] + ([f"train.max_epochs={epochs}"] if epochs else []))
        write_run(tmp_path, f"e{seed}", [r])
    cfg = compose("report", ["report.metrics=[NDCG@10]", "report.name=e",
                             "report.figures=false"], root=tmp_path)
    res = report(Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")))
    got = {r["config"]: (round(r["NDCG@10"], 4), r["n_seeds"]) for r in res.rows}
    assert got == {"train.max_epochs=None": (0.4, 2), "train.max_epochs=4": (0.17, 1)}
    # without saved configs, the overrides that are not shared say it
    for p in tmp_path.glob("runs/*/.hydra/config.yaml"):
        p.unlink()
    res = report(Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")))
    assert {r["config"] for r in res.rows} == {"config " + "d" * 12, "train.max_epochs=4"}


def test_report_picks_the_policy_candidates_unless_asked(tmp_path):
    on, off = "loo/full/mask=on/ties=pessimistic", "loo/full/mask=off/ties=pessimistic"
    write_run(tmp_path, "m", [{**row("pop", None, "t1", 0, 0.04, protocol=on), "policy": True},
                              {**row("pop", None, "t1", 0, 0.02, protocol=off),
                               "policy": False}])
    for which, want in (("policy", {on: 0.04}), ("other", {off: 0.02}),
                        ("both", {on: 0.04, off: 0.02})):
        cfg = compose("report", ["report.metrics=[NDCG@10]", f"report.name={which}",
                                 "report.figures=false", f"report.candidates={which}"],
                      root=tmp_path)
        res = report(Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")))
        assert {r["protocol"]: r["NDCG@10"] for r in res.rows} == want


def test_paper_compat_runs_stay_apart_from_the_fixed_ones(tmp_path):
    """The same model, pair, protocol and seed with and without the original code's bugs: the
    newer row must not replace the older, nor the two be averaged; `[]` (none active) and rows
    from before the field are the same fixed run."""
    rows = []
    for seed in range(2):
        fixed = row("preprec", "a", "t1", seed, 0.2 + 0.01 * seed)
        rows.append({**fixed, "paper_compat": [] if seed else None})
        compat = row("preprec", "a", "t1", seed, 0.1 + 0.01 * seed)
        compat["finished_at"] = f"2026-02-01T00:00:{seed:02d}"  # newer than the fixed rows
        rows.append({**compat, "paper_compat": ["last_epoch_as_best", "argsort_time"]})
    write_run(tmp_path, "c", rows)
    for layout in ("table", "matrix"):
        cfg = compose("report", ["report.metrics=[NDCG@10]", f"report.name={layout}",
                                 "report.figures=false", f"report.layout={layout}"],
                      root=tmp_path)
        res = report(Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")))
        got = {r["paper_compat"]: (round(r["NDCG@10"], 4), r["n_seeds"]) for r in res.rows}
        assert got == {None: (0.205, 2), "argsort_time,last_epoch_as_best": (0.105, 2)}


def test_bar_layout_puts_pop_beside_the_models_of_its_candidate_set():
    """Pop's masked full ranking shares a group with SASRec's full ranking (the mask goes into
    its label); the sampled protocol gets groups of its own."""
    from recx.plots import bar_layout

    popfull = "loo/full/mask=on/ties=pessimistic"
    agg = pd.DataFrame([
        {"model": "sasrec", "target": "t1", "protocol": FULL, "NDCG@10": 0.3},
        {"model": "pop", "target": "t1", "protocol": popfull, "NDCG@10": 0.1},
        {"model": "sasrec", "target": "t1", "protocol": SAMPLED, "NDCG@10": 0.6},
        {"model": "sasrec", "target": "t2", "protocol": FULL, "NDCG@10": 0.2},
    ])
    data, groups, series = bar_layout(agg, ["model"], ["target"], "NDCG@10")
    assert groups == ["t1 · full", "t1 · sampled:100:uniform", "t2 · full"]
    # within the full family, mask=off and mask=on differ; within the sampled family nothing does
    assert series == ["sasrec [mask=off]", "pop [mask=on]", "sasrec"]
    assert data["_col"].tolist() == ["t1 · full", "t1 · full", "t1 · sampled:100:uniform",
                                     "t2 · full"]
