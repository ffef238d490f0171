"""The steps of docs/development.md "Adding a model", followed for a throw-away model: an adapter
module, a YAML in the config folder, one registry entry; then the stages train, look up and
refuse it by the capabilities its class declares, and the recipe schema checks its YAML."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from recx.errors import ConfigError
from tests.conftest import CONF

ADAPTER = '''
"""itembias: one learned score per item (a popularity model trained by gradient)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recx.models.base import Batches, Capabilities, RecModel


class ItemBias(RecModel):
    name = "itembias"
    capabilities = Capabilities(sequential=False)  # ID-based: no zero-shot transfer
    recipe_keys = ("batch_size",)  # model.optim holds RECIPE_KEYS and these

    def __init__(self, n_items: int = 0, *, init_std: float, optim: dict):
        super().__init__(n_items, self.read_recipe(optim))
        self.bias = nn.Parameter(torch.randn(n_items + 1) * init_std)

    def train_batches(self, domain, rng, users) -> Batches:
        events = np.flatnonzero(domain.train_mask & np.isin(domain.user, users))
        bs = int(self.optim["batch_size"])

        def batches():
            order = rng.permutation(events)
            for lo in range(0, len(order), bs):
                yield {"items": torch.from_numpy(domain.item[order[lo:lo + bs]].astype(np.int64))}

        return Batches(-(-len(events) // bs), batches, n_samples=len(events))

    def loss(self, batch) -> torch.Tensor:
        items = batch["items"].to(self.device)
        return F.cross_entropy(self.bias[1:].expand(len(items), -1), items - 1)

    def score_all(self, batch) -> torch.Tensor:
        return self.bias.expand(len(batch.items), -1).clone()
'''

YAML = """\
# itembias: one learned score per item.
name: itembias
init_std: 0.01              # (float) std of the initial scores
optim:
  batch_size: 64            # (int) training events per batch
  lr: 1.0e-2                # (float) Adam learning rate
  weight_decay: 0.0         # (float)
  max_epochs: 3             # (int)
  eval_every: 1             # (int) validate every N epochs
  patience: 2               # (int) validations without improvement before stopping
  loss: ce                  # (str) ce = softmax over all items
  sampler: events           # (str) events = every training event once per epoch
"""


@pytest.fixture
def itembias(tmp_path, monkeypatch):
    """The three steps: the adapter module, its YAML in a config folder, the registry entry."""
    from recx.models import registry

    (tmp_path / "itembias_model.py").write_text(textwrap.dedent(ADAPTER))
    monkeypatch.syspath_prepend(str(tmp_path))
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "model" / "itembias.yaml").write_text(YAML)
    monkeypatch.setenv("RECX_CONF_DIR", str(conf))
    monkeypatch.setitem(registry.MODELS, "itembias", "itembias_model:ItemBias")
    return tmp_path


def test_a_new_model_trains_is_found_again_and_keeps_to_its_capabilities(itembias):
    import recx

    root = [f"paths.root={itembias}", "dataset=tiny"]
    rows = recx.run("train", ["model=itembias", *root])
    test = rows[(rows.split == "test") & (rows.slice == "all") & rows.policy]
    assert list(test.setting) == ["in_domain"] and test["NDCG@10"].between(0, 1).all()
    entries = list((itembias / "outputs" / "artifacts" / "train" / "itembias" / "tiny").iterdir())
    assert len(entries) == 1 and (entries[0] / "model.pt").is_file()
    assert set(rows.ckpt_hash) == {entries[0].name}
    # the interpolation stage finds it by hash as a base; the metrics are the trained model's
    blend = recx.run("interpolate", ["model=pop", "base=itembias", f"paths.root={itembias}",
                                     "source=tiny", "target=tiny"])
    assert set(blend.base_ckpt_hash) == {entries[0].name}
    alone = blend[(blend.alpha == 0) & (blend.split == "test") & (blend.slice == "all")
                  & blend.policy]
    assert float(alone["NDCG@10"].iloc[0]) == pytest.approx(float(test["NDCG@10"].iloc[0]))
    # not zero-shot by its class: transfer refuses it before any work
    with pytest.raises(ConfigError, match="itembias is ID-based and cannot transfer"):
        recx.run("transfer", ["model=itembias", f"paths.root={itembias}", "source=tiny",
                              "target=tiny_b"])


def test_the_recipe_schema_and_the_yaml_comments_check_a_new_model(itembias):
    import recx

    root = [f"paths.root={itembias}", "dataset=tiny"]
    with pytest.raises(ConfigError, match=r"model\.optim\.patience is missing"):
        recx.run("train", ["model=itembias", "~model.optim.patience", *root])
    with pytest.raises(ConfigError, match=r"optim\.patiense is unknown — did you mean 'patience'"):
        recx.run("train", ["model=itembias", "+model.optim.patiense=3", *root])
    with pytest.raises(ConfigError, match=r"model\.init_std=abc must be a number"):
        recx.run("train", ["model=itembias", "model.init_std=abc", *root])
    assert not (itembias / "outputs" / "artifacts").exists()  # nothing ran
