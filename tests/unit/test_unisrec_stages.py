"""UniSRec through the stages: `recx pretrain` mixes the sources in every batch and reports each
source, `recx transfer` is zero-shot, `recx finetune` runs both modes and reloads strictly;
and (slow) pre-training on synth_a + synth_b beats an untrained model zero-shot on synth_t."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import compose, run_stage

SMALL = ["model.hidden=16", "model.inner=16", "text=hashing"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stage(tmp_path, name, *over):
    return run_stage(tmp_path, name, "model=unisrec", *over)


def test_pretrain_transfer_and_both_finetune_modes(tmp_path, monkeypatch):
    from recx.models.unisrec import UniSRec

    seen = []
    original = UniSRec.loss
    monkeypatch.setattr(UniSRec, "loss", lambda self, b: seen.append(
        (self.phase, self.domain.name, b.get("targets", b["items"]).clone()))
        or original(self, b))
    src = ["source=[tiny,tiny_b]", "train=fast", *SMALL]
    res = stage(tmp_path, "pretrain", *src)
    assert {r["target"] for r in res.rows} == {"tiny", "tiny_b"}  # each source reported
    assert {r["setting"] for r in res.rows} == {"pretrain"}
    phase, trained_on, targets = seen[0]
    assert (phase, trained_on) == ("pretrain", "tiny+tiny_b")
    n_tiny = res.rows[[r["target"] for r in res.rows].index("tiny")]["n_items"]
    assert (targets <= n_tiny).any() and (targets > n_tiny).any()  # one batch, both domains
    res = stage(tmp_path, "transfer", *src, "target=tiny")
    assert {(r["setting"], r["split"]) for r in res.rows} == {("zero_shot", "valid"),
                                                             ("zero_shot", "test")}
    assert {r["n_items"] for r in res.rows} == {n_tiny}  # the target's catalogue, not the union
    for mode in ("inductive", "transductive"):
        seen.clear()
        res = stage(tmp_path, "finetune", *src, "target=tiny", f"finetune.mode={mode}")
        assert {r["mode"] for r in res.rows} == {mode} and {r["model"] for r in res.rows} == {
            "unisrec"}
        assert seen and all(p == mode for p, _, _ in seen)
    # a fine-tuning recipe given only at finetune time finds the same pre-training
    seen.clear()
    res = stage(tmp_path, "finetune", *src, "target=tiny", "finetune.mode=inductive",
                "model.optim.finetune.sampler=every_position",
                "model.optim.finetune.batch_size=8")
    assert seen and all(p == "inductive" for p, _, _ in seen)
    assert len(list((tmp_path / "outputs" / "artifacts" / "pretrain").rglob("model.pt"))) == 1
    ckpts = sorted((tmp_path / "outputs" / "artifacts" / "finetune").rglob("model.pt"))
    assert len(ckpts) == 3
    keys = [set(torch.load(p, weights_only=True)["state_dict"]) for p in ckpts]
    assert sum("item_id_embedding.weight" in k for k in keys) == 1  # the transductive one


@pytest.mark.slow
def test_pretrained_on_synth_a_b_beats_untrained_zero_shot_on_synth_t(tmp_path):
    from recx.models.registry import build_model
    from recx.stages.checkpoints import save_model

    model_over = ["model.hidden=64", "model.inner=64", "text=hashing", "text.dim=384"]
    src = ["source=[synth_a,synth_b]", "train.max_epochs=1", *model_over]
    stage(tmp_path, "pretrain", *src)
    trained = stage(tmp_path, "transfer", *src, "target=synth_t")
    cfg = compose("transfer", ["model=unisrec", *src, "target=synth_t"], root=tmp_path)
    torch.manual_seed(0)
    untrained_path = tmp_path / "untrained.pt"
    save_model(untrained_path, build_model(cfg.model), cfg.model)
    untrained = stage(tmp_path, "transfer", *src, "target=synth_t", f"ckpt={untrained_path}")

    def ndcg(res):
        return next(r["NDCG@10"] for r in res.rows if r["split"] == "test")

    print(f"synth_t zero-shot NDCG@10: untrained {ndcg(untrained):.4f}, "
          f"pretrained on synth_a+synth_b {ndcg(trained):.4f}")
    assert ndcg(trained) > 1.2 * ndcg(untrained), (ndcg(untrained), ndcg(trained))
