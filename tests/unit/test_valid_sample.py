"""Early stopping on a sample of validation users (model.optim.valid_sample_users)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import EvalSchema
from recx.eval.evaluator import Evaluator
from recx.stages.common import valid_sample
from tests.conftest import make_model, random_domain


@pytest.fixture(scope="module")
def domain():
    return random_domain("valid_sample", 40, 30, 12)


def test_sampled_validation_ranks_the_same_subset_of_full_results(domain, tmp_path):
    ev = OmegaConf.merge(OmegaConf.structured(EvalSchema), {"batch_users": 8})
    scores = torch.randn(domain.n_users + 1, domain.n_items + 1,
                         generator=torch.Generator().manual_seed(2)).round(decimals=1)

    def scorer(batch, cand):
        return scores[batch.users]

    full = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(scorer, "valid")
    n = len(full.users) // 3
    a = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(scorer, "valid",
                                                                           sample=n)
    b = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(scorer, "valid",
                                                                           sample=n)
    assert len(a.users) == n and np.array_equal(a.users, b.users)  # the same users every time
    # each sampled user keeps exactly the rank it has in the full evaluation
    where = {u: i for i, u in enumerate(full.users.tolist())}
    idx = np.array([where[u] for u in a.users.tolist()])
    assert np.array_equal(a.ranks, full.ranks[:, idx])
    # a sample at least as large as the split is the full split
    whole = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(
        scorer, "valid", sample=len(full.users))
    assert np.array_equal(whole.ranks, full.ranks)


def test_the_sample_is_a_recipe_setting_of_the_model():
    assert valid_sample(make_model("statmlp", n_items=5)) is None  # default: every user
    assert valid_sample(make_model("statmlp", n_items=5, optim={"valid_sample_users": 500})) \
        == 500


def test_eval_sample_users_samples_every_split_and_names_itself(domain, tmp_path):
    """eval.sample_users ranks the same seeded users as `sample=` in every split, says so in
    the protocol string and enters the early-stopping protocol of the checkpoint hash."""
    from recx.artifacts import select_protocol

    ev = OmegaConf.merge(OmegaConf.structured(EvalSchema), {"batch_users": 8})
    few = OmegaConf.merge(ev, {"sample_users": 10})
    scores = torch.randn(domain.n_users + 1, domain.n_items + 1,
                         generator=torch.Generator().manual_seed(3))

    def scorer(batch, cand):
        return scores[batch.users]

    for split in ("valid", "test"):
        by_arg = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(
            scorer, split, sample=10)
        by_cfg = Evaluator(domain, few, mask_history=False, cache_root=tmp_path)
        res = by_cfg.run(scorer, split)
        assert len(res.users) == 10 and np.array_equal(res.ranks, by_arg.ranks)
    assert by_cfg.protocol == "loo/full/mask=off/ties=pessimistic/users=10"
    assert "sample_users" not in select_protocol(ev)  # unchanged hashes when unset
    assert select_protocol(few)["sample_users"] == 10
