"""The training loop's schedule: patience runs with or without keeping the best weights (PrepRec's
`paper_compat.last_epoch_as_best` keeps the last epoch's, as the original code did by accident,
but still stops early), and a fixed-epoch fit (few-shot fine-tuning) validates nothing."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import TrainSchema
from recx.train.loop import fit
from tests.conftest import make_model, random_domain

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def domain():
    return random_domain("fit_schedule", 40, 30, 12)


def scripted_fit(domain, tmp_path, keep_best: bool):
    """Validation scores 0.5, 0.4, 0.3, … with patience 2: the best is epoch 1, and the fit must
    stop after epoch 3. Returns (result, final state, state at each validation)."""
    torch.manual_seed(0)
    model = make_model("gru4rec", n_items=domain.n_items, max_len=10, embedding=8, hidden=8,
                       optim={"batch_size": 64})
    model.fit_inputs(domain)
    seen = []

    def validate():
        seen.append(copy.deepcopy(model.state_dict()))
        return 0.5 - 0.1 * (len(seen) - 1)

    train_cfg = OmegaConf.structured(TrainSchema)
    res = fit(model, [domain], [domain.train_users()], train_cfg=train_cfg, seed=0,
              work_dir=tmp_path, validate=validate, max_epochs=10, eval_every=1, patience=2,
              keep_best=keep_best, progress="false")
    return res, model.state_dict(), seen


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("keep_best", [True, False])
def test_patience_stops_early_with_and_without_keeping_the_best(domain, tmp_path, keep_best):
    res, final, seen = scripted_fit(domain, tmp_path, keep_best)
    assert (res.epochs_run, res.stopped_early, res.best_epoch) == (3, True, 1)
    assert res.best_score == pytest.approx(0.5)
    assert len(seen) == 3 and not same(seen[0], seen[2])
    kept = seen[0] if keep_best else seen[2]  # the best epoch's weights, or the last epoch's
    assert same(final, kept)


def test_a_fixed_epoch_fit_validates_nothing_and_keeps_the_end_state(domain, tmp_path):
    torch.manual_seed(0)
    model = make_model("gru4rec", n_items=domain.n_items, max_len=10, embedding=8, hidden=8,
                       optim={"batch_size": 64})
    model.fit_inputs(domain)
    start = copy.deepcopy(model.state_dict())
    res = fit(model, [domain], [domain.train_users()],
              train_cfg=OmegaConf.structured(TrainSchema), seed=0, work_dir=tmp_path,
              validate=None, max_epochs=3, progress="false")
    assert res.epochs_run == 3 and not res.stopped_early and res.best_epoch == -1
    assert all("valid" not in row for row in res.history)
    assert not same(model.state_dict(), start)
