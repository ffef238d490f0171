"""The model contract (ARCHITECTURE §8), for every registry entry, on the `tiny` domains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recx.data.sequences import query_batch
from recx.models.registry import MODELS, build_model
from recx.stages.common import load_model_file, save_model
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
