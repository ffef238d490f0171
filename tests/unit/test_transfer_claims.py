"""scripts/transfer_claims.py: the papers' claims from a per-seed report table, hand-checked."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "transfer_claims.py"
spec = importlib.util.spec_from_file_location("transfer_claims", SCRIPT)
transfer_claims = importlib.util.module_from_spec(spec)
spec.loader.exec_module(transfer_claims)

FULL = "loo/full/mask=off/ties=pessimistic"
POP_FULL = "loo/full/mask=on/ties=pessimistic"


def row(setting, model, seed, ndcg, recall, source="–", protocol=FULL):
    return {"setting": setting, "model": model, "base": "sasrec" if setting == "interpolate"
            else "–", "source": source, "seed": seed, "target": "t", "protocol": protocol,
            "user_fraction": 1.0, "n_seeds": 1, "NDCG@10": ndcg, "Recall@10": recall}


def frame():
    return pd.DataFrame([
        row("in_domain", "sasrec", 0, 0.10, 0.20),
        row("in_domain", "sasrec", 1, 0.20, 0.40),
        row("in_domain", "pop", 0, 0.05, 0.10, protocol=POP_FULL),
        row("zero_shot", "preprec", 0, 0.06, 0.12, source="s"),
        row("zero_shot", "preprec", 1, 0.09, 0.18, source="s"),
        # only seed 0 was blended: it must be compared with SASRec seed 0, not the mean
        row("interpolate", "preprec", 0, 0.11, 0.21, source="s"),
    ])


def test_claims_pair_each_blend_with_its_own_seed():
    (r,) = transfer_claims.claims(frame(), "preprec").to_dict("records")
    assert (r["seeds"], r["sasrec seeds"], r["blend seeds"]) == (2, 2, 1)
    # zero-shot mean 0.075 vs SASRec mean 0.15 → −50 %; vs Pop 0.05 → +50 %
    assert r["NDCG@10 zero-shot vs sasrec"] == "-50.0 %"
    assert r["NDCG@10 zero-shot vs pop"] == "+50.0 %"
    # blend seed 0: 0.11 vs SASRec seed 0 0.10 → +10 % (against the 0.15 mean it would be −27 %)
    assert r["NDCG@10 interpolation gain"] == "+10.0 %"
    assert r["Recall@10 interpolation gain"] == "+5.0 %"


def test_claims_without_user_fraction_column():
    # a report of runs that never set train.user_fraction has no such column: all users
    (r,) = transfer_claims.claims(frame().drop(columns="user_fraction"), "preprec").to_dict(
        "records")
    assert (r["seeds"], r["NDCG@10 interpolation gain"]) == (2, "+10.0 %")


def test_cold_rows_stay_out():
    cold = row("zero_shot", "preprec", 2, 0.90, 0.90, source="s") | {"user_fraction": 0.1}
    table = pd.concat([frame(), pd.DataFrame([cold])], ignore_index=True)
    (r,) = transfer_claims.claims(table, "preprec").to_dict("records")
    assert (r["seeds"], r["NDCG@10 zero-shot vs sasrec"]) == (2, "-50.0 %")


def test_claims_need_the_seed_column():
    with pytest.raises(ValueError, match="seed"):
        transfer_claims.claims(frame().drop(columns="seed"), "preprec")


@pytest.mark.parametrize("absent", [None, "–"])  # "–": how recx report writes no tag
def test_tagged_variants_stay_apart(absent):
    tagged = frame()
    tagged["tag"] = absent
    gated = row("interpolate", "preprec", 0, 0.10, 0.20, source="s") | {"tag": "alpha_gated"}
    ablation = row("zero_shot", "preprec", 0, 0.50, 0.50, source="s") | {"tag": "text_only"}
    tagged = pd.concat([tagged, pd.DataFrame([gated, ablation])], ignore_index=True)
    (r,) = transfer_claims.claims(tagged, "preprec").to_dict("records")
    # the untagged rows alone: as in the first test
    assert (r["seeds"], r["NDCG@10 interpolation gain"]) == (2, "+10.0 %")
    (r,) = transfer_claims.claims(tagged, "preprec", tag="alpha_gated").to_dict("records")
    # the gated blend fell back to SASRec seed 0 (0.10): no gain; zero-shot rows untagged still
    assert (r["seeds"], r["NDCG@10 interpolation gain"]) == (2, "+0.0 %")
