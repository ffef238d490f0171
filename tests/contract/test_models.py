"""The model contract (ARCHITECTURE §8), for every registry entry, on the `tiny` domains."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import TrainSchema
from recx.data.sequences import query_batch
from recx.models.registry import MODELS, build_model, model_class
from recx.stages.checkpoints import load_model_file, save_model
from recx.train.loop import fit
from tests.conftest import compose


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from recx.data.domain import load_domain
    from recx.data.features import FeatureEnv

    root = tmp_path_factory.mktemp("contract")
    cfg = compose("transfer", ["source=tiny", "target=tiny_b", "text=hashing"], root=root)
    out = {}
    for key, ds in (("tiny", cfg.source.tiny), ("tiny_b", cfg.target)):
        d = load_domain(ds, cfg.eval, cfg.paths)
        d.env = FeatureEnv(cache_root=root / "outputs" / "cache", text=cfg.text, seed=0)
        out[key] = d
    return out, cfg, root


def model_cfg(name):
    return compose("train", [f"model={name}", "dataset=tiny", "text=hashing"]).model


def scores(model, domain, n=6):
    q = domain.queries("test")
    batch = query_batch(domain, q.pos[:n], getattr(model, "max_len", 50))
    with torch.no_grad():
        return model.score_all(batch)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract(name, env, tmp_path):
    domains, _, _ = env
    tiny = domains["tiny"]
    torch.manual_seed(0)
    mcfg = model_cfg(name)
    model = build_model(mcfg, n_items=tiny.n_items)
    model.fit_inputs(tiny)
    model.fit_nonparametric(tiny)
    s = scores(model, tiny)
    assert s.shape == (6, tiny.n_items + 1)
    assert torch.isfinite(s[:, 1:]).all()
    if model.capabilities.trainable:
        model.train()
        batches = model.train_batches(tiny, np.random.default_rng(0), tiny.train_users())
        assert len(batches) > 0
        loss = model.loss(next(iter(batches)))
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
        model.eval()
    # save → torch.load(weights_only=True) → strict load → identical scores
    path = tmp_path / "model.pt"
    save_model(path, model, mcfg)
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw["model_config"], str)
    again, _ = load_model_file(path, mcfg, "cpu")
    again.fit_inputs(tiny)
    again.fit_nonparametric(tiny)
    assert torch.equal(scores(again, tiny), scores(model, tiny))
    if model.capabilities.zero_shot:
        other = domains["tiny_b"]
        again.fit_inputs(other)
        s_b = scores(again, other)
        assert s_b.shape == (6, other.n_items + 1)
        assert torch.isfinite(s_b[:, 1:]).all()


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    "name", sorted(n for n in MODELS if model_class(n).capabilities.trainable))
def test_a_seed_reproduces_training_bitwise(name, env, tmp_path):
    """Same seed, same thread count: the same initial weights and, after an epoch of the
    training loop, the same weights to the bit (a different thread count reorders float sums,
    so only this holds across machines). Another seed trains differently."""
    tiny = env[0]["tiny"]
    mcfg = model_cfg(name)

    def build():
        torch.manual_seed(0)
        model = build_model(mcfg, n_items=tiny.n_items)
        model.fit_inputs(tiny)
        return model

    def one_epoch(model, seed, run):
        fit(model, [tiny], [tiny.train_users()], train_cfg=OmegaConf.structured(TrainSchema),
            seed=seed, work_dir=tmp_path / run, validate=None, max_epochs=1, progress="false")
        return copy.deepcopy(model.state_dict())

    a, b = build(), build()
    start = copy.deepcopy(a.state_dict())
    assert same_weights(start, b.state_dict())
    first, again = one_epoch(a, 0, "a"), one_epoch(b, 0, "b")
    assert not same_weights(first, start)
    assert same_weights(first, again)
    b.load_state_dict(start)
    assert not same_weights(one_epoch(b, 1, "c"), first)


def same_weights(x: dict, y: dict) -> bool:
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
