"""IDP through the stages: `recx pretrain` trains on the union of the sources (one batch from one
source) and reports each source; `recx transfer` scores the target with retrieved embeddings and
reuses the pretrain checkpoint across retrieval settings; `recx finetune` in the cold setting
finds the full pre-training, trains a target table and reloads strictly."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import run_stage

SMALL = ["model.backbone.hidden=8", "model.backbone.inner=8", "text=hashing",
         "model.cdim.optim.epochs=2", "train=fast"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stage(tmp_path, name, *over):
    return run_stage(tmp_path, name, "model=idp", *over)


def test_pretrain_transfer_and_cold_finetune(tmp_path, monkeypatch):
    from recx.models.idp import IDP

    seen = []
    original = IDP.loss
    monkeypatch.setattr(IDP, "loss", lambda self, b: seen.append(
        (self.phase, self.domain.name, b.get("part"))) or original(self, b))
    src = ["source=[tiny,tiny_b]", *SMALL]
    res = stage(tmp_path, "pretrain", *src)
    assert {r["target"] for r in res.rows} == {"tiny", "tiny_b"}  # each source reported
    n = {r["target"]: r["n_items"] for r in res.rows}
    assert {p for _, _, p in seen} == {(0, n["tiny"]), (n["tiny"], n["tiny_b"])}  # one source
    assert {(ph, d) for ph, d, _ in seen} == {("pretrain", "tiny+tiny_b")}
    pretrained = list((tmp_path / "outputs" / "artifacts" / "pretrain").rglob("model.pt"))
    assert len(pretrained) == 1
    ckpt = torch.load(pretrained[0], weights_only=True)
    assert ckpt["state_dict"]["cdim_index"].shape == (n["tiny"] + n["tiny_b"] + 1, 256)
    stage(tmp_path, "pretrain", "source=[tiny]", *SMALL)
    zs = stage(tmp_path, "transfer", "source=[tiny]", "target=tiny_b", *SMALL)
    zs_m1 = stage(tmp_path, "transfer", "source=[tiny]", "target=tiny_b", *SMALL,
                  "model.retrieval.m=1")  # the same pretrain checkpoint, another retrieval
    assert {r["setting"] for r in zs.rows} == {"zero_shot"}
    assert {r["ckpt_hash"] for r in zs.rows} == {r["ckpt_hash"] for r in zs_m1.rows}
    assert {r["n_items"] for r in zs.rows} == {n["tiny_b"]}  # the target's catalogue
    seen.clear()
    ft = stage(tmp_path, "finetune", "source=[tiny]", "target=tiny_b", *SMALL,
               "train.user_fraction=0.5", "finetune.freeze=residual")
    assert {r["setting"] for r in ft.rows} == {"finetune"}
    assert seen and {(ph, d) for ph, d, _ in seen} == {("finetune", "tiny_b")}
    finetuned = list((tmp_path / "outputs" / "artifacts" / "finetune").rglob("model.pt"))
    state = torch.load(finetuned[0], weights_only=True)["state_dict"]
    assert state["target_delta"].shape == (n["tiny_b"] + 1, 8) and "target_base" in state
    assert len(list((tmp_path / "outputs" / "artifacts" / "pretrain").rglob("model.pt"))) == 2


def test_a_matcher_variant_reuses_the_pretraining_with_its_own_matcher(tmp_path):
    """The text-only matcher ablation (cdim.behaviour_positive=none) finds the CDIM
    pre-training, swaps in a matcher fitted with its own settings (cached), and scores with it;
    the default settings keep the checkpoint's matcher."""
    from recx.models.cdim_training import fit_matcher
    from recx.models.idp import IDP
    from recx.stages.checkpoints import load_model_file, pretrained_model
    from recx.stages.common import Context
    from tests.conftest import compose

    src = ["source=[tiny]", *SMALL]
    stage(tmp_path, "pretrain", *src)
    text_only = [*src, "model.cdim.behaviour_positive=none", "target=tiny_b"]
    zs = stage(tmp_path, "transfer", *src, "target=tiny_b")
    ab = stage(tmp_path, "transfer", *text_only)
    assert {r["ckpt_hash"] for r in zs.rows} == {r["ckpt_hash"] for r in ab.rows}
    assert len(list((tmp_path / "outputs" / "artifacts" / "pretrain").rglob("model.pt"))) == 1

    def load(over):
        cfg = compose("transfer", ["model=idp", *over], root=tmp_path)
        ctx = Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu"))
        return ctx, pretrained_model(ctx)[0]

    ctx, model = load(text_only)
    ckpt = next((tmp_path / "outputs" / "artifacts" / "pretrain").rglob("model.pt"))
    saved, _ = load_model_file(ckpt, ctx.cfg.model, ctx.device)
    want = fit_matcher(ctx.domain(ctx.cfg.source.tiny), model.cdim_cfg, model.plm_size)
    assert model.matcher_key_str() == want.key != saved.matcher_key_str()
    torch.testing.assert_close(model.cdim_index, torch.from_numpy(want.index))
    torch.testing.assert_close(model.net.item_emb.weight, saved.net.item_emb.weight)  # phase A
    _, default = load([*src, "target=tiny_b"])
    assert default.matcher_key_str() == saved.matcher_key_str()
    assert isinstance(default, IDP)
