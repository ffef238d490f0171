"""`recx report report.view=transfer|text|claims` (recx/stages/report_published.py): the published
result tables and the papers' claims from per-seed rows, hand-checked; then the views end to end
on metrics.json files: the candidate policy's rows only, and experiments never pooled."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from recx.errors import ConfigError
from recx.stages import report_published as P
from recx.stages.common import Context
from recx.stages.report import run as report
from tests.conftest import compose

FULL = "loo/full/mask=off/ties=pessimistic"
POP_FULL = "loo/full/mask=on/ties=pessimistic"
SAMPLED = "loo/sampled:100:uniform/mask=n-a/ties=pessimistic"


def row(setting, model, seed, ndcg, recall, source="–", protocol=FULL, **kw):
    return {"setting": setting, "model": model, "base": "sasrec" if setting == "interpolate"
            else "–", "source": source, "seed": seed, "target": "ml_100k", "protocol": protocol,
            "user_fraction": 1.0, "tag": "–", "mode": "–", "NDCG@10": ndcg, "Recall@10": recall,
            **kw}


def frame(rows) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    return table.assign(family=table.protocol.map(P.family))


def lines_of(text: str, title: str) -> list[str]:
    block = text.split(title)[1].split("\n\n")[1]
    return block.strip().splitlines()


def test_transfer_cells_and_seed_matched_gain():
    rows = [row("in_domain", "sasrec", 0, 0.10, 0.20), row("in_domain", "sasrec", 1, 0.20, 0.40),
            row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("zero_shot", "preprec", 0, 0.06, 0.12, source="yelp_a"),
            row("zero_shot", "preprec", 1, 0.09, 0.18, source="yelp_a"),
            row("zero_shot", "preprec", 2, 0.50, 0.50, source="yelp_a", tag="ablation"),
            row("interpolate", "preprec", 0, 0.11, 0.21, source="yelp_a"),
            row("in_domain", "sasrec", 0, 0.7, 0.8, protocol=SAMPLED)]
    text = P.transfer_tables(frame(rows), ["preprec"], seeds=3)
    head, _, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert head == "| target | Pop | SASRec | PrepRec ← Yelp-A | candidates |"
    # mean 0.075, sample std of (0.06, 0.09) = 0.0212; two of three seeds; the tagged row is out
    # the candidates column shows that Pop (mask=on) and the others (mask=off) differ
    assert ml == ("| ml-100k | 0.0500 (1) | 0.1500 ± 0.0707 (2) | 0.0750 ± 0.0212 (2) | "
                  "mask=off, mask=on |")
    *_, ml = lines_of(text, "Interpolated with SASRec")
    # the blend of seed 0 against SASRec seed 0 (0.10), not the two-seed mean
    assert ml.endswith("| 0.1100 (1), +10.0 % | mask=off, mask=on |")
    *_, sampled = lines_of(text, "Zero-shot, Recall@10 against 100 sampled negatives")
    assert sampled == "| ml-100k | · | 0.8000 (1) | · | sampled:100:uniform |"


def test_the_gated_blend_with_pop_is_a_table_of_its_own():
    rows = [row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("zero_shot", "preprec", 0, 0.04, 0.12, source="yelp_a", protocol=POP_FULL),
            row("interpolate", "preprec", 0, 0.06, 0.13, source="yelp_a", protocol=POP_FULL,
                base="pop", tag="zero_shot_gated")]
    text = P.transfer_tables(frame(rows), ["preprec"], seeds=1)
    *_, ml = lines_of(text, "Zero-shot gated with Pop")
    assert ml == "| ml-100k | 0.0500 | · | 0.0600, +20.0 % | mask=on |"
    *_, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert ml == "| ml-100k | 0.0500 | · | 0.0400 | mask=on |"  # the plain zero-shot cell stays
    # a blend with Pop is not one with SASRec, and tables of blends nobody ran are left out
    assert "Interpolated with SASRec" not in text
    assert "gated" not in P.transfer_tables(frame(rows[:2]), ["preprec"], seeds=1)
    assert "sampled negatives" not in text.split("Zero-shot gated")[1]


def test_other_tie_rules_stay_out_and_a_seed_twice_is_an_error():
    pop_random = POP_FULL.replace("pessimistic", "random")
    rows = [row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("in_domain", "pop", 0, 0.07, 0.12, protocol=pop_random),  # a tie study
            row("zero_shot", "preprec", 0, 0.06, 0.12, source="yelp_a")]
    text = P.transfer_tables(frame(rows), ["preprec"], seeds=1)
    *_, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert ml == "| ml-100k | 0.0500 | · | 0.0600 | mask=off, mask=on |"
    # Pop with and without the history mask on one seed: which one is meant is not guessed
    rows.append(row("in_domain", "pop", 0, 0.04, 0.09, protocol=FULL))
    with pytest.raises(ConfigError, match=r"Pop on ml_100k: more than one run of seed\(s\) \[0\]"):
        P.transfer_tables(frame(rows), ["preprec"], seeds=1)


def test_a_tagged_variant_gets_columns_of_its_own():
    rows = [row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("zero_shot", "statmlp", 0, 0.02, 0.04, source="yelp_a", protocol=POP_FULL),
            row("zero_shot", "statmlp", 0, 0.01, 0.03, source="yelp_a", protocol=POP_FULL,
                tag="popularity_only"),
            row("zero_shot", "statmlp", 0, 0.90, 0.90, source="yelp_a", protocol=POP_FULL,
                tag="another_ablation")]
    text = P.transfer_tables(frame(rows), ["statmlp", "statmlp:popularity_only"],
                                          seeds=1)
    head, _, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert head == ("| target | Pop | SASRec | statmlp ← Yelp-A | "
                    "statmlp (popularity only) ← Yelp-A | candidates |")
    assert ml == "| ml-100k | 0.0500 | · | 0.0200 | 0.0100 | mask=on |"


def test_long_layout_puts_models_side_by_side_with_their_change_of_pop():
    rows = [row("in_domain", "sasrec", 0, 0.10, 0.20), row("in_domain", "sasrec", 1, 0.20, 0.40),
            row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("in_domain", "pop", 1, 0.05, 0.10, protocol=POP_FULL),
            row("zero_shot", "preprec", 0, 0.06, 0.12, source="yelp_a"),
            row("zero_shot", "preprec", 1, 0.08, 0.16, source="yelp_a"),
            row("zero_shot", "statmlp", 0, 0.04, 0.08, source="yelp_a", protocol=POP_FULL),
            row("zero_shot", "statmlp", 0, 0.02, 0.04, source="amazon_beauty_2014",
                protocol=POP_FULL),
            row("interpolate", "statmlp", 1, 0.22, 0.44, source="yelp_a")]
    text = P.transfer_tables(frame(rows), ["preprec", "statmlp"], seeds=2,
                                          layout="long")
    head, align, beauty, yelp = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert head == "| target | source | Pop | SASRec | PrepRec | statmlp | candidates |"
    assert align == "|---|---|---:|---:|---:|---:|---:|"
    # sources sorted; PrepRec's mean 0.07 is +40 % of Pop's 0.05, statmlp's 0.02 is −60 %
    assert beauty == ("| ml-100k | Beauty | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | · | "
                      "0.0200 (1), -60.0 % | mask=off, mask=on |")
    assert yelp == ("| ml-100k | Yelp-A | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | "
                    "0.0700 ± 0.0141, +40.0 % | 0.0400 (1), -20.0 % | mask=off, mask=on |")
    # an interpolation's change is of the SASRec seed it blends (seed 1: 0.20); rows without
    # any model's run are left out
    _, _, only = lines_of(text, "Interpolated with SASRec")
    assert only.endswith("| Yelp-A | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | · | 0.2200 (1), +10.0 % "
                         "| mask=off, mask=on |")


def test_text_warm_and_cold():
    rows = [row("in_domain", "sasrec", s, v, 2 * v) for s, v in ((0, 0.1), (1, 0.2), (2, 0.3))]
    rows += [row("in_domain", "sasrec", 0, 0.05, 0.06, user_fraction=0.1),
             row("finetune", "unisrec", 0, 0.07, 0.08, mode="inductive", user_fraction=0.1),
             row("finetune", "idp", 0, 0.04, 0.05, user_fraction=0.1, tag="text_only_matcher"),
             row("zero_shot", "idp", 0, 0.01, 0.02)]
    text = P.text_tables(frame(rows), seeds=3)
    head, _, warm = lines_of(text, "Warm")
    assert head.startswith("| target | Pop | SASRec | IDP zero-shot | IDP zero-shot, text-only")
    # SASRec over three seeds: mean 0.2 ± 0.1, recall 0.4 ± 0.2
    assert warm.startswith("| ml-100k | · | 0.2000 ± 0.1000 / 0.4000 ± 0.2000 | "
                           "0.0100 / 0.0200 (1) | · |")
    _, _, cold, full = lines_of(text, "Cold")
    assert cold == ("| ml-100k | 0.1 | 0.0500 / 0.0600 (1) | · | 0.0400 / 0.0500 (1) | "
                    "0.0700 / 0.0800 (1) | · |")
    assert full.startswith("| ml-100k | 1 | 0.2000 ± 0.1000")
    head, _, cold, full = lines_of(text, "Change against SASRec")
    assert head == ("| target | users | IDP fine-tuned | IDP fine-tuned, text-only matcher | "
                    "UniSRec inductive | UniSRec transductive |")
    # seed 0 with 10 % of the users: UniSRec 0.08 vs SASRec 0.06 Recall@10 (+33.3 %),
    # 0.07 vs 0.05 NDCG@10 (+40 %); the text-only IDP 0.05 vs 0.06 (-16.7 %), 0.04 vs 0.05 (-20 %)
    assert cold == ("| ml-100k | 0.1 | · | -16.7 % (-20.0 %) [1] | +33.3 % (+40.0 %) [1] | · |")
    assert full == "| ml-100k | 1 | · | · | · | · |"


def test_text_change_pairs_seeds():
    """A model run on fewer seeds than SASRec is compared with SASRec on those seeds only."""
    rows = [row("in_domain", "sasrec", s, v, 2 * v) for s, v in ((0, 0.1), (1, 0.2), (2, 0.3))]
    rows += [row("finetune", "idp", 2, 0.3, 0.66)]
    text = P.text_tables(frame(rows), seeds=3)
    *_, line = lines_of(text, "Change against SASRec")
    # seed 2: 0.66 vs 0.6 Recall@10 (+10 %), 0.3 vs 0.3 NDCG@10; not vs the 3-seed mean 0.4
    assert line == "| ml-100k | 1 | +10.0 % (+0.0 %) [1] | · | · | · |"


# ------------------------------------------------------------------------------ claims
def claim_row(setting, model, seed, ndcg, recall, source="–", protocol=FULL):
    return {"setting": setting, "model": model, "base": "sasrec" if setting == "interpolate"
            else "–", "source": source, "seed": seed, "target": "t", "protocol": protocol,
            "user_fraction": 1.0, "n_seeds": 1, "NDCG@10": ndcg, "Recall@10": recall}


def claim_frame():
    return pd.DataFrame([
        claim_row("in_domain", "sasrec", 0, 0.10, 0.20),
        claim_row("in_domain", "sasrec", 1, 0.20, 0.40),
        claim_row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
        claim_row("zero_shot", "preprec", 0, 0.06, 0.12, source="s"),
        claim_row("zero_shot", "preprec", 1, 0.09, 0.18, source="s"),
        # only seed 0 was blended: it must be compared with SASRec seed 0, not the mean
        claim_row("interpolate", "preprec", 0, 0.11, 0.21, source="s"),
    ])


def test_claims_pair_each_blend_with_its_own_seed():
    (r,) = P.claims(claim_frame(), "preprec").to_dict("records")
    assert (r["seeds"], r["sasrec seeds"], r["blend seeds"]) == (2, 2, 1)
    # zero-shot mean 0.075 vs SASRec mean 0.15 → −50 %; vs Pop 0.05 → +50 %
    assert r["NDCG@10 zero-shot vs sasrec"] == "-50.0 %"
    assert r["NDCG@10 zero-shot vs pop"] == "+50.0 %"
    # blend seed 0: 0.11 vs SASRec seed 0 0.10 → +10 % (against the 0.15 mean it would be −27 %)
    assert r["NDCG@10 interpolation gain"] == "+10.0 %"
    assert r["Recall@10 interpolation gain"] == "+5.0 %"


def test_claims_without_user_fraction_column():
    # rows of runs that never set train.user_fraction have no such field: all users
    (r,) = P.claims(claim_frame().drop(columns="user_fraction"), "preprec").to_dict("records")
    assert (r["seeds"], r["NDCG@10 interpolation gain"]) == (2, "+10.0 %")


def test_cold_rows_stay_out_of_the_claims():
    cold = claim_row("zero_shot", "preprec", 2, 0.90, 0.90, source="s") | {"user_fraction": 0.1}
    table = pd.concat([claim_frame(), pd.DataFrame([cold])], ignore_index=True)
    (r,) = P.claims(table, "preprec").to_dict("records")
    assert (r["seeds"], r["NDCG@10 zero-shot vs sasrec"]) == (2, "-50.0 %")


def test_claims_need_the_seed_field():
    with pytest.raises(ConfigError, match="seed"):
        P.claims(claim_frame().drop(columns="seed"), "preprec")


@pytest.mark.parametrize("absent", [None, "–"])  # "–": how recx report writes no tag
def test_tagged_variants_stay_apart_in_the_claims(absent):
    tagged = claim_frame()
    tagged["tag"] = absent
    gated = claim_row("interpolate", "preprec", 0, 0.10, 0.20, source="s") | {
        "tag": "alpha_gated"}
    ablation = claim_row("zero_shot", "preprec", 0, 0.50, 0.50, source="s") | {
        "tag": "text_only"}
    tagged = pd.concat([tagged, pd.DataFrame([gated, ablation])], ignore_index=True)
    (r,) = P.claims(tagged, "preprec").to_dict("records")
    # the untagged rows alone: as in the first test
    assert (r["seeds"], r["NDCG@10 interpolation gain"]) == (2, "+10.0 %")
    (r,) = P.claims(tagged, "preprec", tag="alpha_gated").to_dict("records")
    # the gated blend fell back to SASRec seed 0 (0.10): no gain; zero-shot rows untagged still
    assert (r["seeds"], r["NDCG@10 interpolation gain"]) == (2, "+0.0 %")


# ------------------------------------------------------------------------------ the views
def metrics_row(setting, model, seed, ndcg, recall, *, source=None, policy=True, exp="e0",
                **kw):
    """A metrics.json row as the stages write it (test split, all users); the other candidate
    rule's row (policy false) masks the history where the policy does not."""
    return {"status": "ok", "stage": setting, "setting": setting, "model": model, "mode": None,
            "base": "sasrec" if setting == "interpolate" else None, "source": source,
            "target": "ml_100k", "split": "test", "slice": "all", "seed": seed, "alpha": None,
            "selected": True if setting == "interpolate" else None,
            "protocol": FULL if policy else POP_FULL,
            "policy": policy, "experiment_hash": f"{model}-{exp}", "NDCG@10": ndcg,
            "Recall@10": recall, "finished_at": f"2026-01-01T00:00:{seed:02d}", **kw}


def write_runs(root: Path, rows: list[dict]) -> None:
    for k, r in enumerate(rows):
        path = root / "outputs" / "runs" / f"run{k}" / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"schema_version": 1, "rows": [r]}))


def view(root: Path, name: str, *extra: str) -> str:
    cfg = compose("report", [f"report.view={name}", "report.name=pub", "report.tables.seeds=2",
                             *extra], root=root)
    report(Context(cfg=cfg, run_dir=root, device=torch.device("cpu")))
    return (root / "outputs" / "tables" / "pub" / f"{name}.md").read_text()


MATRIX = [metrics_row("in_domain", "sasrec", 0, 0.10, 0.20),
          metrics_row("in_domain", "sasrec", 1, 0.20, 0.40),
          metrics_row("in_domain", "pop", 0, 0.05, 0.10),
          metrics_row("in_domain", "pop", 1, 0.05, 0.10),
          metrics_row("zero_shot", "preprec", 0, 0.06, 0.12, source="yelp_a"),
          metrics_row("zero_shot", "preprec", 1, 0.09, 0.18, source="yelp_a"),
          metrics_row("interpolate", "preprec", 0, 0.11, 0.21, source="yelp_a"),
          # the other candidate rule's rows of the same runs: never in a published table
          metrics_row("zero_shot", "preprec", 0, 0.90, 0.90, source="yelp_a", policy=False),
          metrics_row("in_domain", "sasrec", 0, 0.90, 0.90, policy=False)]


def test_transfer_and_claims_views_read_the_policy_rows(tmp_path):
    write_runs(tmp_path, MATRIX)
    text = view(tmp_path, "transfer")
    *_, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    # mean 0.075 ± 0.0212 of the policy rows (not the other rule's 0.90); Pop 0.05 over 2 seeds
    assert ml == "| ml-100k | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | 0.0750 ± 0.0212 | mask=off |"
    *_, blend = lines_of(text, "Interpolated with SASRec")
    assert blend.endswith("| 0.1100 (1), +10.0 % | mask=off |")
    claims_md = view(tmp_path, "claims")
    assert claims_md.startswith("## preprec") and "| -50.0 % |" in claims_md
    table = pd.read_csv(tmp_path / "outputs" / "tables" / "pub" / "claims.csv")
    (r,) = table.to_dict("records")
    assert (r["model"], r["NDCG@10 zero-shot vs sasrec"], r["NDCG@10 interpolation gain"]) == \
        ("preprec", "-50.0 %", "+10.0 %")


def test_a_cell_of_two_experiments_is_an_error_naming_them(tmp_path):
    other = metrics_row("zero_shot", "preprec", 2, 0.50, 0.50, source="yelp_a", exp="e1",
                        overrides=["model.optim.max_epochs=12", "seed=2"])
    write_runs(tmp_path, [*MATRIX, other])
    # the one without overrides is named by its config hash
    with pytest.raises(ConfigError, match=r"differ in more than the seed \(config preprec-e0; "
                                          r"model\.optim\.max_epochs=12\)"):
        view(tmp_path, "transfer")
    # narrowed to one experiment, the table is the first test's
    text = view(tmp_path, "transfer", "+report.where.experiment_hash=[preprec-e0,sasrec-e0,"
                                      "pop-e0]")
    assert "0.0750 ± 0.0212" in text


def test_text_view_and_an_unknown_view(tmp_path):
    write_runs(tmp_path, [metrics_row("in_domain", "sasrec", 0, 0.10, 0.20),
                          metrics_row("finetune", "idp", 0, 0.12, 0.22, source="yelp_a")])
    warm = lines_of(view(tmp_path, "text"), "Warm")
    assert warm[2].startswith("| ml-100k | · | 0.1000 / 0.2000 (1) | · | · | · | "
                              "0.1200 / 0.2200 (1) |")
    with pytest.raises(ConfigError, match=r"report\.view='tables'"):
        view(tmp_path, "tables")
