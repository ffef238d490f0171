"""tests/fixtures/metrics.schema.json accepts a well-formed row and rejects the faults it exists
to catch (the stages' rows are validated against it in the smoke tests)."""

from __future__ import annotations

import pytest

from tests.conftest import assert_valid_rows

ROW = {"status": "ok", "stage": "interpolate", "setting": "interpolate", "model": "preprec",
       "mode": None, "base": "sasrec", "source": "synth_a+synth_b", "target": "synth_t",
       "split": "test", "slice": "all", "seed": 0, "alpha": 0.35, "selected": True,
       "protocol": "loo/full/mask=off/ties=pessimistic", "policy": True,
       "scenario": "leave_one_out",
       "candidates": "full", "n_negatives": None, "mask_history": "off", "ties": "pessimistic",
       "n_users": 2000, "n_items": 1000, "n_repeat_targets": 0, "paper_compat": [],
       "data_hash": "0123456789ab", "ckpt_hash": "abcdef012345", "config_hash": "00ff00ff00ff",
       "experiment_hash": "00ff00ff00aa", "overrides": [],
       "device": "cpu", "deterministic": True, "recx_version": "0.1.0", "duration_s": 1.5,
       "finished_at": "2026-12-07T00:00:00", "NDCG@10": 0.1234, "Recall@10": 0.25,
       "gain_vs_base": 0.04}


def test_a_well_formed_row_and_a_failed_one_pass():
    assert_valid_rows([ROW, {"status": "failed", "stage": "train", "error": "boom"}])


@pytest.mark.parametrize("change", [
    {"paper_compat": None},                                  # not a list
    {"NDCG@10": 1.5},                                        # a metric outside [0, 1]
    {"protocol": "loo/full/ties=pessimistic"},               # no mask part
    {"split": "train"},
    {"ckpt_hash": "XYZ"},
    {"setting": "zero-shot"},
])
def test_faulty_rows_are_rejected(change):
    with pytest.raises(AssertionError):
        assert_valid_rows([{**ROW, **change}])


def test_missing_fields_are_rejected():
    for key in ("paper_compat", "protocol", "seed", "NDCG@10"):
        with pytest.raises(AssertionError, match=key):
            assert_valid_rows([{k: v for k, v in ROW.items() if k != key}])
    with pytest.raises(AssertionError, match="error"):
        assert_valid_rows([{"status": "failed", "stage": "train"}])
