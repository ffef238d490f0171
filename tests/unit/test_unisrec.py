"""UniSRec (models/unisrec.md): adaptor shapes and gate, parameter counts, the contrastive losses
on a hand-worked batch, the augmentation, what fine-tuning freezes, strict loading with the
declared missing key, and that pre-training on source domains helps zero-shot on a new one."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from recx.config.schema import EvalSchema, TextSchema
from recx.data.domain import domain_from_frame
from recx.data.features import FeatureEnv
from recx.data.merge import merge_domains
from recx.data.sequences import query_batch
from recx.errors import CheckpointError, ConfigError
from recx.models.modules.moe_adaptor import MoEAdaptor, PWLayer
from recx.models.modules.unisrec_net import UniSRecNet
from recx.models.unisrec import augment_views, info_nce
from recx.train import checkpoint
from recx.train.loop import make_optimizer
from tests.conftest import make_model

SMALL = {"plm_size": 16, "hidden": 12, "inner": 8, "heads": 2, "n_experts": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def text_domain(tmp_path, name="shop", n_users=12, n_items=9, seed=0, dim=16):
    """Users with 4–7 events over `n_items` items whose text is a colour and a thing."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        seq = rng.choice(n_items, size=rng.integers(4, 8), replace=False)
        rows += [(f"u{u}", f"{name}{i}", 100 * k) for k, i in enumerate(seq)]
    colours, things = ["red", "green", "blue"], ["mug", "pan", "lamp"]
    items = pd.DataFrame({"item": [f"{name}{i}" for i in range(n_items)],
                          "title": [f"{colours[i % 3]} {things[i // 3 % 3]}"
                                    for i in range(n_items)],
                          "category": [things[i // 3 % 3] for i in range(n_items)]})
    d = domain_from_frame(pd.DataFrame(rows, columns=["user", "item", "ts"]), name, items=items,
                          text_fields=["title", "category"])
    d.env = FeatureEnv(cache_root=tmp_path / "cache", text=OmegaConf.merge(
        OmegaConf.structured(TextSchema), {"kind": "hashing", "name": "hashing", "dim": dim}))
    return d


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------ adaptor
def test_parameter_counts_match_the_spec():
    torch.manual_seed(0)
    assert n_params(make_model("unisrec", plm_size=768)) == 2_910_344  # the paper's BERT input
    assert n_params(make_model("unisrec", plm_size=384)) == 1_979_528  # all-MiniLM-L6-v2
    moe = make_model("unisrec", plm_size=768).net.moe
    assert n_params(moe) == 8 * (768 + 768 * 300) + 2 * 768 * 8
    t = make_model("unisrec", n_items=99, plm_size=384, train_mode="transductive")
    assert n_params(t) == 1_979_528 + 100 * 300


def test_whitening_expert_is_w_times_x_minus_b():
    pw = PWLayer(3, 2, dropout=0.2).eval()
    with torch.no_grad():
        pw.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
        pw.lin.weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]]))
    x = torch.tensor([[2.0, 1.0, 0.0]])  # x − b = (1, 1, 1)
    torch.testing.assert_close(pw(x), torch.tensor([[3.0, 2.0]]))
    assert pw.lin.bias is None


def test_moe_shapes_uniform_gate_at_start_and_mixing():
    torch.manual_seed(0)
    moe = MoEAdaptor(4, 16, 12, dropout=0.2).eval()
    x = torch.randn(5, 7, 16)
    assert moe(x).shape == (5, 7, 12)
    torch.testing.assert_close(moe.gates(x), torch.full((5, 7, 4), 0.25))
    experts = torch.stack([e(x) for e in moe.experts], dim=-2)
    torch.testing.assert_close(moe(x), experts.mean(-2))
    with torch.no_grad():
        moe.w_gate.normal_(0, 1.0)
    g = moe.gates(x)
    torch.testing.assert_close(g.sum(-1), torch.ones(5, 7))
    assert g.std(-1).min() > 0.01  # no longer uniform: the gate now weighs experts per item
    torch.testing.assert_close(moe(x), (g.unsqueeze(-1) * experts).sum(-2))
    for k in range(4):  # a real mixture, not one expert
        assert not torch.allclose(moe(x), experts[..., k, :])
    moe.train()
    with torch.no_grad():
        moe.experts[0].dropout.p = 0.0
    noisy = moe.gates(x)  # training: the noise (std ≥ floor) moves the gate
    assert not torch.allclose(noisy, g) and torch.allclose(noisy.sum(-1), torch.ones(5, 7))


def test_last_position_encoding_equals_full_blocks_and_chunking_is_exact():
    torch.manual_seed(0)
    net = UniSRecNet(16, 12, 8, 2, 2, 0.5, 0.5, "gelu", 1e-12, 0.02, 10, 3, 0.2, 0.01).eval()
    lengths = [1, 3, 10, 2, 7, 5, 9, 4]
    items = torch.tensor([[0] * (10 - n) + list(range(1, n + 1)) for n in lengths])
    table = torch.randn(11, 12)
    from recx.models.modules.sasrec_net import left_pad_positions
    from recx.models.modules.transformer import attention_mask

    x = net.drop(net.ln(table[items] + net.pos_emb(left_pad_positions(items))))
    mask = attention_mask(items, causal=True)
    for block in net.blocks:
        x = block(x, mask)
    reference = x[:, -1]
    with torch.no_grad():
        torch.testing.assert_close(net.encode_last(table, items, items), reference)
        torch.testing.assert_close(net.encode_last(table, items, items, chunk_rows=3), reference)


def test_every_position_encoding_equals_the_last_position_of_each_prefix():
    """encode_all at position t of a window = encode_last of the window cut after t (causal)."""
    torch.manual_seed(0)
    net = UniSRecNet(16, 12, 8, 2, 2, 0.5, 0.5, "gelu", 1e-12, 0.02, 10, 3, 0.2, 0.01).eval()
    lengths = [1, 3, 10, 2, 7]
    items = torch.tensor([[0] * (10 - n) + list(range(1, n + 1)) for n in lengths])
    table = torch.randn(11, 12)
    with torch.no_grad():
        states = net.encode_all(table, items, items, chunk_rows=2)
        for row, n in enumerate(lengths):
            for t in range(10 - n, 10):
                prefix = torch.cat([torch.zeros(9 - t, dtype=torch.long), items[row, :t + 1]])
                torch.testing.assert_close(
                    states[row, t], net.encode_last(table, prefix[None], prefix[None])[0])
        assert (states[0, :8] == 0).all()  # padding cut off (its chunk is 2 wide)


def test_every_position_finetuning_is_the_prefix_loss_over_the_same_targets(tmp_path):
    """With dropout off and windows covering whole sequences, the window CE is the mean of the
    prefix CE over the same targets (each target once per epoch under both samplers)."""
    d = text_domain(tmp_path)
    quiet = {**SMALL, "dropout": 0.0, "attn_dropout": 0.0, "adaptor_dropout": 0.0,
             "train_mode": "inductive"}
    torch.manual_seed(0)
    prefix = make_model("unisrec", **quiet, max_len=10, optim={"finetune": {"batch_size": 10_000}})
    windows = make_model("unisrec", **quiet, max_len=10, optim={"finetune": {
        "batch_size": 10_000, "sampler": "every_position", "stride": 10}})
    windows.load_state_dict(prefix.state_dict())
    users = d.train_users()
    losses = []
    for m in (prefix, windows):
        m.fit_inputs(d)
        m.eval()  # no gate noise: both see the same item vectors
        batches = m.train_batches(d, np.random.default_rng(0), users)
        assert batches.n_samples == int((d.n_train[users] - 1).sum())
        with torch.no_grad():
            losses.append(m.loss(next(iter(batches))))
    torch.testing.assert_close(losses[1], losses[0])


# ------------------------------------------------------------------------- contrastive losses
def test_info_nce_on_a_hand_worked_2x2_batch():
    """τ = 0.5, s = c = [(1, 0), (0.6, 0.8)]: logits [[2, 1.2], [1.2, 2]]."""
    s = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    distinct, same = torch.tensor([5, 7]), torch.tensor([5, 5])
    # −log(e² / (e² + e^1.2)) = log(1 + e^−0.8) = 0.371101 for both rows
    assert info_nce(s, s, distinct, distinct, 0.5).item() == pytest.approx(0.371101, abs=1e-6)
    # same target: the negative is removed (−∞), only the positive is left: loss 0
    assert info_nce(s, s, same, same, 0.5).item() == pytest.approx(0.0, abs=1e-7)
    # the original fills 0: −log(e² / (e² + e⁰)) = log(1 + e^−2) = 0.126928
    assert info_nce(s, s, same, same, 0.5, fill_zero=True).item() == pytest.approx(
        0.126928, abs=1e-6)
    assert math.isclose(math.log(1 + math.exp(-2)), 0.126928, abs_tol=1e-6)
    # columns gathered from another rank: the positive of row j sits at j + offset
    cols = torch.cat([torch.tensor([[0.0, 1.0]]), s])
    col_t = torch.cat([torch.tensor([9]), distinct])
    expect = -torch.log_softmax(s @ cols.T / 0.5, 1)[[0, 1], [1, 2]].mean()
    torch.testing.assert_close(info_nce(s, cols, distinct, col_t, 0.5, offset=1), expect)


def test_pretrain_loss_is_si_plus_lambda_ss(tmp_path):
    d = text_domain(tmp_path)
    torch.manual_seed(0)
    m = make_model("unisrec", **SMALL, lambda_ss=0.3, aug_item_drop_prob=0.5, word_drop=0.5)
    m.fit_inputs(d)
    batch = next(iter(m.train_batches(d, np.random.default_rng(0), d.train_users())))
    assert batch["aug_word_drop"].any() and (batch["aug_items"] != batch["items"]).any()
    m.eval()  # no dropout or gate noise: every term is deterministic
    t = batch["targets"]
    s = torch.nn.functional.normalize(m._encode(batch["items"]), dim=-1)
    table, index = m._adapt(t)
    v = torch.nn.functional.normalize(table[index], dim=-1)
    wd = m._tables[(d.data_hash, "word_drop")]
    s_aug = torch.nn.functional.normalize(
        m._encode(batch["aug_items"], batch["aug_word_drop"], wd), dim=-1)
    expect = info_nce(s, v, t, t, 0.07) + 0.3 * info_nce(s, s_aug, t, t, 0.07)
    torch.testing.assert_close(m.loss(batch), expect)
    # the word-dropped view really uses the other text table
    plain = torch.nn.functional.normalize(m._encode(batch["aug_items"]), dim=-1)
    assert not torch.allclose(plain, s_aug)


class StubRng:
    def __init__(self, *draws):
        self.draws = [np.asarray(x, dtype=float) for x in draws]

    def random(self, size=None):
        return self.draws.pop(0)


def test_augmentation_item_drop_and_word_drop_by_hand():
    hist = np.array([[0, 0, 3, 4, 5, 6], [0, 7, 8, 9, 10, 11]])
    keep_draws = [[0.9, 0.9, 0.1, 0.5, 0.9, 0.1], [0.5, 0.1, 0.5, 0.1, 0.5, 0.5]]
    # row 0 item drop (0.5 < 0.9): 3 and 6 dropped, but the last item (6) always survives
    items, word = augment_views(hist, StubRng(keep_draws, [0.5, 0.95]), 0.2, 0.9)
    np.testing.assert_array_equal(items, [[0, 0, 0, 4, 5, 6], [0, 7, 8, 9, 10, 11]])
    np.testing.assert_array_equal(word, [[0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0]])
    # paper_compat.aug_per_batch: one draw (0.95 ≥ 0.9) makes the whole batch word drop
    items, word = augment_views(hist, StubRng(keep_draws, 0.95), 0.2, 0.9, per_batch=True)
    np.testing.assert_array_equal(items, hist)
    np.testing.assert_array_equal(word, [[0, 0, 1, 0, 0, 1], [0, 1, 0, 1, 0, 0]])


# ------------------------------------------------------------------------------- fine-tuning
def trainable(m) -> set[str]:
    return {n.split(".")[0] + "." + n.split(".")[1] if n.startswith("net.") else n.split(".")[0]
            for n, p in m.named_parameters() if p.requires_grad}


def test_finetune_freezes_what_it_says(tmp_path):
    d = text_domain(tmp_path)
    torch.manual_seed(0)
    m = make_model("unisrec", **SMALL)
    m.fit_inputs(d)
    m.prepare_finetune(d, {"mode": "inductive", "freeze_encoder": True, "train_input_ln": True})
    assert m.phase == "inductive" and m.item_id_embedding is None
    assert trainable(m) == {"net.moe", "net.ln"}
    assert m.optim["batch_size"] == 2048 and m.optim["loss"] == "ce_full_cosine"
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = make_optimizer(m, m.optim)
    m.train()
    batch = next(iter(m.train_batches(d, np.random.default_rng(0), d.train_users())))
    assert "aug_items" not in batch  # no augmentation and no contrastive loss when tuning
    m.loss(batch).backward()
    assert all(p.grad is None for p in m.net.blocks.parameters())
    assert all(p.grad is None for p in m.net.pos_emb.parameters())
    opt.step()
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("net.moe.", "net.ln.")) for k in changed)
    assert any(k.startswith("net.moe.experts") for k in changed)

    m.prepare_finetune(d, {"mode": "transductive", "train_input_ln": False})
    assert trainable(m) == {"net.moe", "item_id_embedding"}
    assert m.item_id_embedding.num_embeddings == d.n_items + 1
    m.prepare_finetune(d, {"mode": "inductive", "freeze_encoder": False})
    assert trainable(m) == {"net.moe", "net.ln", "net.pos_emb", "net.blocks"}
    with pytest.raises(ConfigError, match=r"finetune\.mode"):
        m.prepare_finetune(d, {"mode": "both"})
    with pytest.raises(ConfigError, match="true or false"):
        m.prepare_finetune(d, {"mode": "inductive", "freeze_encoder": "False"})


def test_transductive_adds_ids_to_items_and_trains_them(tmp_path):
    d = text_domain(tmp_path)
    torch.manual_seed(0)
    m = make_model("unisrec", **SMALL)
    m.fit_inputs(d)
    m.eval()
    q = d.queries("test")
    batch = query_batch(d, q.pos, 50)
    inductive = m.score_all(batch)
    m.prepare_finetune(d, {"mode": "transductive"})
    m.eval()
    torch.testing.assert_close(m._item_table(), m.net.moe(m.plm) + m.item_id_embedding.weight)
    assert not torch.allclose(m.score_all(batch), inductive)
    m.train()
    train = next(iter(m.train_batches(d, np.random.default_rng(0), d.train_users())))
    m.loss(train).backward()
    assert m.item_id_embedding.weight.grad[1:].abs().sum() > 0


def test_strict_load_declares_the_new_id_table(tmp_path):
    d = text_domain(tmp_path)
    torch.manual_seed(0)
    pre = make_model("unisrec", **SMALL)
    state = pre.state_dict()
    assert not any("plm" in k for k in state)  # the text vectors are never saved
    m = make_model("unisrec", **SMALL)
    m.fit_inputs(d)
    m.prepare_finetune(d, {"mode": "transductive"})
    assert m.expected_missing_keys("transductive") == {"item_id_embedding.weight"}
    checkpoint.load_state(m, state, "transductive")
    torch.testing.assert_close(m.net.moe.w_gate, pre.net.moe.w_gate)
    with pytest.raises(CheckpointError, match="item_id_embedding"):
        checkpoint.load_state(m, state, "same")
    ind = make_model("unisrec", **SMALL)
    checkpoint.load_state(ind, state, "inductive")  # nothing missing


# ------------------------------------------------------------------------------ multi-domain
def test_union_pretraining_mixes_domains_and_ranks_within_each(tmp_path):
    a, b = text_domain(tmp_path, "a", seed=1), text_domain(tmp_path, "b", seed=2)
    union = merge_domains([a, b])
    union.sources = [a, b]
    torch.manual_seed(0)
    m = make_model("unisrec", **SMALL, optim={"pretrain": {"batch_size": 64}})
    m.fit_inputs(union)
    batch = next(iter(m.train_batches(union, np.random.default_rng(0), union.train_users())))
    part_b = batch["targets"] > a.n_items
    assert part_b.any() and (~part_b).any()  # one batch holds both domains' sequences
    m.eval()
    q = union.queries("valid")
    scores = m.score_all(query_batch(union, q.pos, 50))
    in_b = torch.from_numpy(q.targets > a.n_items)
    assert torch.isinf(scores[in_b][:, 1:a.n_items + 1]).all()
    assert torch.isfinite(scores[in_b][:, a.n_items + 1:]).all()
    assert torch.isinf(scores[~in_b][:, a.n_items + 1:]).all()
    m.fit_inputs(a)  # a plain domain: nothing masked
    assert torch.isfinite(m.score_all(query_batch(a, a.queries("valid").pos, 50))[:, 1:]).all()


def test_wrong_plm_size_names_the_fix(tmp_path):
    d = text_domain(tmp_path, dim=16)
    with pytest.raises(ConfigError, match=r"model\.plm_size=16"):
        make_model("unisrec", **{**SMALL, "plm_size": 32}).fit_inputs(d)


def test_bad_recipes_are_rejected():
    with pytest.raises(ConfigError, match="a recipe per phase"):
        make_model("unisrec", optim={"lr": 1e-3})
    # a typo is an error, not a silent default
    with pytest.raises(ConfigError, match=r"model\.optim\.finetune\.lr_ is unknown — did you "
                                          r"mean 'lr'\?"):
        make_model("unisrec", optim={"finetune": {"lr_": 1e-3}})
    with pytest.raises(ConfigError, match="loss=infonce_si_ss"):
        make_model("unisrec", optim={"pretrain": {"loss": "ce"}})
    with pytest.raises(ConfigError, match=r"sampler=prefix$"):  # contrastive batches: prefixes
        make_model("unisrec", optim={"pretrain": {"sampler": "every_position"}})
    with pytest.raises(ConfigError, match=re.escape("prefix | every_position")):
        make_model("unisrec", optim={"finetune": {"sampler": "windows"}})
    with pytest.raises(ConfigError, match="train_mode"):
        make_model("unisrec", train_mode="finetune")


# --------------------------------------------------------------------------------- zero-shot
# pinned generator settings (not the schema's defaults, which may be retuned): taste-driven
# choices and topical titles, so the item text carries the signal that transfers
WORLD = {"beta": 2.0, "gamma": 1.0, "drift": 0.15, "rho_topic": 0.7, "sigma_item": 0.5,
         "alpha_cat": 1.0, "lifetime_median_days": 120.0, "activity_median": 12.0,
         "activity_sigma": 0.8, "two_topic_prob": 0.5, "repeat_prob": 0.0}


def synth_domain(tmp_path, name, seed, topics, n_users=800, n_items=300):
    from recx.config.schema import DatasetSchema
    from recx.data.domain import load_domain

    ds = OmegaConf.merge(OmegaConf.structured(DatasetSchema), {
        "name": name, "reader": "synthetic", "download": False,
        "text_fields": ["title", "category", "brand"],
        "synthetic": {"seed": seed, "topics": topics, "n_users": n_users, "n_items": n_items,
                      **WORLD}})
    paths = OmegaConf.create({"cache": str(tmp_path / "cache"), "data": str(tmp_path / "data")})
    d = load_domain(ds, OmegaConf.structured(EvalSchema), paths)
    d.env = FeatureEnv(cache_root=tmp_path / "cache", text=OmegaConf.merge(
        OmegaConf.structured(TextSchema), {"kind": "hashing", "name": "hashing", "dim": 64}))
    return d


def zero_shot_ndcg(model, domain, tmp_path) -> float:
    from recx.eval.evaluator import Evaluator

    model.fit_inputs(domain)
    model.eval()
    ev = Evaluator(domain, OmegaConf.structured(EvalSchema), mask_history=False,
                   cache_root=tmp_path / "cache", max_len=model.max_len)
    res = ev.run(lambda batch, cand: model.score_all(batch), "test")
    return res.metrics(["NDCG"], [10])["all"]["NDCG@10"]


def test_pretraining_on_two_sources_beats_an_untrained_model_zero_shot(tmp_path):
    """Small synthetic worlds (topics shared through the item text): one contrastive epoch on two
    sources transfers to a third domain with its own items and users."""
    pytest.importorskip("recx.data.synthetic")
    a = synth_domain(tmp_path, "src_a", 11, list(range(0, 8)))
    b = synth_domain(tmp_path, "src_b", 12, list(range(4, 12)))
    t = synth_domain(tmp_path, "tgt", 13, list(range(2, 10)))
    union = merge_domains([a, b])
    union.sources = [a, b]
    cfg = {"plm_size": 64, "hidden": 32, "inner": 32, "max_len": 20,
           "optim": {"pretrain": {"batch_size": 128}}}
    torch.manual_seed(0)
    untrained = make_model("unisrec", **cfg)
    torch.manual_seed(0)
    model = make_model("unisrec", **cfg)
    model.fit_inputs(union)
    opt = make_optimizer(model, model.optim)
    for epoch in range(1):
        model.train()
        for batch in model.train_batches(union, np.random.default_rng(epoch),
                                         union.train_users()):
            opt.zero_grad()
            model.loss(batch).backward()
            opt.step()
    before, after = zero_shot_ndcg(untrained, t, tmp_path), zero_shot_ndcg(model, t, tmp_path)
    assert after > before * 1.25, (before, after)  # measured: 0.027 → 0.040


def test_within_own_part_keeps_only_the_items_of_the_users_part():
    """Parts (0, 3] and (3, 5]: a user whose last item is 2 keeps items 1-3, one whose last item
    is 5 keeps 4-5; the padding id 0 is outside every part."""
    from recx.models.base import within_own_part

    scores = torch.arange(12, dtype=torch.float).view(2, 6)
    out = within_own_part(scores, torch.tensor([2, 5]), torch.tensor([3, 5]))
    inf = float("-inf")
    assert out.tolist() == [[inf, 1.0, 2.0, 3.0, inf, inf], [inf, inf, inf, inf, 10.0, 11.0]]
