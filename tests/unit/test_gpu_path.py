"""The GPU and scale paths' pieces, checked on CPU: bf16 autocast training, batch transfer, the
evaluator's out-of-memory retry and query order, and the DDP helpers (sharding, per-rank
batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import EvalSchema, TrainSchema
from recx.errors import ConfigError
from recx.eval.evaluator import Evaluator
from recx.train import distributed as D
from recx.train.loop import _amp, fit, to_device
from tests.conftest import make_model, random_domain


@pytest.fixture(scope="module")
def domain():
    return random_domain("gpu_path", 40, 30, 12)


def train_cfg(**kw):
    return OmegaConf.merge(OmegaConf.structured(TrainSchema), kw)


def test_amp_modes_on_cpu():
    cpu = torch.device("cpu")
    assert _amp(train_cfg(amp="auto"), cpu) == (None, None)  # auto: off on CPU
    assert _amp(train_cfg(amp="bf16"), cpu) == (torch.bfloat16, None)
    with pytest.raises(ConfigError, match="fp16"):
        _amp(train_cfg(amp="fp16"), cpu)
    with pytest.raises(ConfigError):
        _amp(train_cfg(amp="fp8"), cpu)


def test_bf16_autocast_training_runs_and_learns(domain, tmp_path):
    torch.manual_seed(0)
    model = make_model("gru4rec", n_items=domain.n_items, max_len=10, embedding=8, hidden=8,
                    optim={"batch_size": 64})
    model.fit_inputs(domain)
    res = fit(model, [domain], [domain.train_users()], train_cfg=train_cfg(amp="bf16"), seed=0,
              work_dir=tmp_path, validate=None, max_epochs=3, progress="false")
    losses = [r["loss"] for r in res.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


def test_to_device_copies_nested_batches():
    batch = {"a": torch.ones(2), "b": [torch.zeros(1), 3], "flag": True}
    out = to_device(batch, torch.device("cpu"))
    assert torch.equal(out["a"], batch["a"]) and out["b"][1] == 3 and out["flag"] is True


def test_evaluator_halves_the_batch_on_out_of_memory(domain, tmp_path):
    ev = OmegaConf.merge(OmegaConf.structured(EvalSchema), {"batch_users": 16})
    scores = torch.randn(domain.n_users + 1, domain.n_items + 1,
                         generator=torch.Generator().manual_seed(0)).round(decimals=1)
    seen = []

    def scorer(batch, cand):
        seen.append(len(batch))
        if len(batch) > 4:  # pretend the device holds at most 4 users' scores
            raise torch.cuda.OutOfMemoryError("simulated")
        return scores[batch.users]

    def plain(batch, cand):
        return scores[batch.users]

    ref = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(plain, "test")
    res = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(scorer, "test")
    assert seen[:3] == [16, 8, 4] and max(seen[3:]) == 4
    assert np.array_equal(res.ranks, ref.ranks) and np.array_equal(res.users, ref.users)


@pytest.mark.parametrize("candidates,ties", [("full", "pessimistic"), ("sampled", "random")])
def test_a_query_order_changes_nothing_but_the_scoring_order(domain, tmp_path, candidates,
                                                             ties):
    ev = OmegaConf.merge(OmegaConf.structured(EvalSchema), {
        "batch_users": 8, "candidates": candidates, "ties": ties, "n_negatives": 20})
    scores = torch.randn(domain.n_users + 1, domain.n_items + 1,
                         generator=torch.Generator().manual_seed(1)).round(decimals=1)
    order_seen = []

    def scorer(batch, cand):
        order_seen.extend(batch.users.tolist())
        s = scores[batch.users]
        return s if cand is None else s.gather(1, cand)

    def reverse(d, pos):
        return np.arange(len(pos))[::-1]

    plain = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path).run(scorer, "test")
    first = order_seen[:]
    order_seen.clear()
    rev = Evaluator(domain, ev, mask_history=False, cache_root=tmp_path,
                    query_order=reverse).run(scorer, "test")
    assert order_seen == first[::-1]  # scored in the requested order...
    assert np.array_equal(rev.ranks, plain.ranks) and np.array_equal(rev.users, plain.users)
    assert np.array_equal(rev.n_candidates, plain.n_candidates)  # ...reported in the natural one


def test_users_are_sharded_disjointly_and_completely():
    users = np.arange(1, 102)
    shards = [D.shard_users(users, seed=3, info=D.DistInfo(rank=r, world=3)) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == users.tolist()
    assert sorted(len(s) for s in shards) == [33, 34, 34]
    again = D.shard_users(users, seed=3, info=D.DistInfo(rank=1, world=3))
    assert np.array_equal(again, shards[1])  # every rank computes the same partition
    assert np.array_equal(D.shard_users(users, 3, D.DistInfo()), users)


def test_per_rank_batch_divides_the_global_batch():
    assert D.per_rank_optim({"batch_size": 2048, "lr": 1e-3}, 4) == {"batch_size": 512,
                                                                       "lr": 1e-3}
    assert D.per_rank_optim({"batch_users": 128}, 2)["batch_users"] == 64
    assert D.per_rank_optim({"batch_size": 10}, 4)["batch_size"] == 2  # floor, with a warning
    with pytest.raises(ConfigError, match="smaller than"):
        D.per_rank_optim({"batch_size": 2}, 4)
    assert not D.active() and D.is_main()  # no torchrun here: one process, rank 0


@pytest.mark.slow
def test_compiled_loss_trains_like_the_eager_one(domain, tmp_path, monkeypatch):
    """train.compile=true wraps the loss in torch.compile (here with the aot_eager backend: the
    inductor C++ build takes minutes on a small CPU; the wiring is what is tested)."""

    calls = []
    real = torch.compile

    def compile_eager(fn, **kw):
        calls.append(fn)
        return real(fn, backend="aot_eager", **kw)

    monkeypatch.setattr(torch, "compile", compile_eager)
    losses = {}
    for flag in (False, True):
        torch.manual_seed(0)
        m = make_model("sasrec", n_items=domain.n_items, max_len=10, hidden=16, inner=32,
                       dropout=0.0, attn_dropout=0.0, optim={"batch_size": 16})
        m.fit_inputs(domain)
        res = fit(m, [domain], [domain.train_users()], train_cfg=train_cfg(compile=flag),
                  seed=0, work_dir=tmp_path / str(flag), validate=None, max_epochs=2,
                  progress="false")
        losses[flag] = [r["loss"] for r in res.history]
    assert len(calls) == 1
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
