"""scripts/results_tables.py: the README's result tables from per-seed report rows, hand-checked."""
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
spec = importlib.util.spec_from_file_location("results_tables", SCRIPTS / "results_tables.py")
results_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_tables)

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
    return table.assign(family=table.protocol.map(results_tables.family))


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
    text = results_tables.transfer_tables(frame(rows), ["preprec"], seeds=3)
    head, _, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert head == "| target | Pop | SASRec | PrepRec ← Yelp-A |"
    # mean 0.075, sample std of (0.06, 0.09) = 0.0212; two of three seeds; the tagged row is out
    assert ml == "| ml-100k | 0.0500 (1) | 0.1500 ± 0.0707 (2) | 0.0750 ± 0.0212 (2) |"
    *_, ml = lines_of(text, "Interpolated with SASRec")
    # the blend of seed 0 against SASRec seed 0 (0.10), not the two-seed mean
    assert ml.endswith("| 0.1100 (1), +10.0 % |")
    *_, sampled = lines_of(text, "Zero-shot, Recall@10 against 100 sampled negatives")
    assert sampled == "| ml-100k | · | 0.8000 (1) | · |"


def test_other_tie_rules_stay_out_and_a_seed_twice_is_an_error():
    pop_random = POP_FULL.replace("pessimistic", "random")
    rows = [row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("in_domain", "pop", 0, 0.07, 0.12, protocol=pop_random),  # a tie study
            row("zero_shot", "preprec", 0, 0.06, 0.12, source="yelp_a")]
    text = results_tables.transfer_tables(frame(rows), ["preprec"], seeds=1)
    *_, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert ml == "| ml-100k | 0.0500 | · | 0.0600 |"
    # Pop with and without the history mask on one seed: which one is meant is not guessed
    rows.append(row("in_domain", "pop", 0, 0.04, 0.09, protocol=FULL))
    with pytest.raises(SystemExit, match=r"Pop on ml_100k: more than one run of seed\(s\) \[0\]"):
        results_tables.transfer_tables(frame(rows), ["preprec"], seeds=1)


def test_a_tagged_variant_gets_columns_of_its_own():
    rows = [row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
            row("zero_shot", "statmlp", 0, 0.02, 0.04, source="yelp_a", protocol=POP_FULL),
            row("zero_shot", "statmlp", 0, 0.01, 0.03, source="yelp_a", protocol=POP_FULL,
                tag="popularity_only"),
            row("zero_shot", "statmlp", 0, 0.90, 0.90, source="yelp_a", protocol=POP_FULL,
                tag="another_ablation")]
    text = results_tables.transfer_tables(frame(rows), ["statmlp", "statmlp:popularity_only"],
                                          seeds=1)
    head, _, ml = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert head == ("| target | Pop | SASRec | statmlp ← Yelp-A | "
                    "statmlp (popularity only) ← Yelp-A |")
    assert ml == "| ml-100k | 0.0500 | · | 0.0200 | 0.0100 |"


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
    text = results_tables.transfer_tables(frame(rows), ["preprec", "statmlp"], seeds=2,
                                          layout="long")
    head, align, beauty, yelp = lines_of(text, "Zero-shot, NDCG@10, full ranking")
    assert head == "| target | source | Pop | SASRec | PrepRec | statmlp |"
    assert align == "|---|---|---:|---:|---:|---:|"
    # sources sorted; PrepRec's mean 0.07 is +40 % of Pop's 0.05, statmlp's 0.02 is −60 %
    assert beauty == ("| ml-100k | Beauty | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | · | "
                      "0.0200 (1), -60.0 % |")
    assert yelp == ("| ml-100k | Yelp-A | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | "
                    "0.0700 ± 0.0141, +40.0 % | 0.0400 (1), -20.0 % |")
    # an interpolation's change is of the SASRec seed it blends (seed 1: 0.20); rows without
    # any model's run are left out
    _, _, only = lines_of(text, "Interpolated with SASRec")
    assert only.endswith("| Yelp-A | 0.0500 ± 0.0000 | 0.1500 ± 0.0707 | · | 0.2200 (1), +10.0 % |")


def test_text_warm_and_cold():
    rows = [row("in_domain", "sasrec", s, v, 2 * v) for s, v in ((0, 0.1), (1, 0.2), (2, 0.3))]
    rows += [row("in_domain", "sasrec", 0, 0.05, 0.06, user_fraction=0.1),
             row("finetune", "unisrec", 0, 0.07, 0.08, mode="inductive", user_fraction=0.1),
             row("finetune", "idp", 0, 0.04, 0.05, user_fraction=0.1, tag="text_only_matcher"),
             row("zero_shot", "idp", 0, 0.01, 0.02)]
    text = results_tables.text_tables(frame(rows), seeds=3)
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
    text = results_tables.text_tables(frame(rows), seeds=3)
    *_, line = lines_of(text, "Change against SASRec")
    # seed 2: 0.66 vs 0.6 Recall@10 (+10 %), 0.3 vs 0.3 NDCG@10; not vs the 3-seed mean 0.4
    assert line == "| ml-100k | 1 | +10.0 % (+0.0 %) [1] | · | · | · |"
