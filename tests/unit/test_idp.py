"""IDP (models/idp.md): retrieval and aggregation by hand, CDIM positives and losses, phase A/B
binding on a union of sources, which table scores which domain, fine-tuning (freeze options,
unseen rows without gradient, strict reloading), and the cold setting's reproducible users."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from recx.config.schema import TextSchema
from recx.data.domain import domain_from_frame
from recx.data.features import FeatureEnv
from recx.data.features.cdim import cooccur_pairs, indexable_items, similarity_spearman
from recx.data.merge import merge_domains
from recx.data.sequences import query_batch
from recx.errors import CheckpointError, ConfigError
from recx.models.cdim_training import fit_matcher, resolve_cfg
from recx.models.idp import IDP
from recx.models.modules.cdim import (
    aggregate,
    aggregation_weights,
    info_nce,
    ridge_map,
    top_m,
)
from recx.train import checkpoint
from recx.train.loop import make_optimizer
from tests.conftest import make_model

DIM = 16
SMALL = {"backbone": {"hidden": 8, "inner": 8, "heads": 2, "max_len": 10}, "plm_size": DIM,
         "cdim": {"head": [32, 16], "optim": {"epochs": 2, "batch_size": 256}}}
COLOURS = ["red", "green", "blue", "black", "white"]
THINGS = ["mug", "pan", "lamp", "desk", "sofa", "vase", "rug"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def text_env(tmp_path, dim=DIM, seed=0):
    return FeatureEnv(cache_root=tmp_path / "cache", seed=seed, text=OmegaConf.merge(
        OmegaConf.structured(TextSchema), {"kind": "hashing", "name": "hashing", "dim": dim}))


def shop(tmp_path, name="shop", n_users=14, n_items=12, seed=0, titles=None):
    """Users with 4–7 events; item i's title is a colour and a thing (all distinct)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        seq = rng.choice(n_items, size=rng.integers(4, min(8, n_items + 1)), replace=False)
        rows += [(f"u{u}", f"{name}{i}", 100 * k) for k, i in enumerate(seq)]
    titles = titles or [f"{COLOURS[i % 5]} {THINGS[i % 7]}" for i in range(n_items)]
    items = pd.DataFrame({"item": [f"{name}{i}" for i in range(n_items)], "title": titles})
    d = domain_from_frame(pd.DataFrame(rows, columns=["user", "item", "ts"]), name, items=items,
                          text_fields=["title"])
    d.env = text_env(tmp_path)
    return d


def title_of(domain, item: int) -> str:
    items = domain.items
    return str(items.loc[items["item"] == item, "title"].iloc[0])


def union_of(tmp_path, *domains):
    union = merge_domains(list(domains))
    union.sources = sorted(domains, key=lambda d: d.name)
    union.env = text_env(tmp_path)
    return union


def pretrained(domain, **kw) -> IDP:
    """An IDP bound to `domain` (phase B run, phase A untrained)."""
    torch.manual_seed(0)
    model = make_model("idp", n_items=domain.n_items, **{**SMALL, **kw})
    model.fit_inputs(domain)
    model.train_batches(domain, np.random.default_rng(0), domain.train_users())
    return model.eval()


def scores(model, domain, n=5):
    q = domain.queries("test")
    with torch.no_grad():
        return model.score_all(query_batch(domain, q.pos[:n], model.max_len))


# -------------------------------------------------------------------------- retrieval by hand
def test_top_m_returns_the_true_nearest_neighbours():
    index = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0],
                                      [0.8, 0.6]]), dim=1)
    query = F.normalize(torch.tensor([[1.0, 0.1], [0.0, -1.0]]), dim=1)
    sims, ids = top_m(query, index, 2)
    # cosines of q0 = (1, .1)/|.|: row0 .995, row4 .856, row1 .657; q1 = (0, -1): row0 0, row3 0
    assert ids[0].tolist() == [0, 4]
    torch.testing.assert_close(sims[0], torch.tensor([1 / math.sqrt(1.01),
                                                      0.86 / math.sqrt(1.01)]))
    assert set(ids[1].tolist()) == {0, 3} and torch.allclose(sims[1], torch.zeros(2), atol=1e-7)
    valid = torch.tensor([False, True, True, True, True])
    _, ids_v = top_m(query, index, 2, chunk=1, valid=valid)  # chunks of one query
    assert ids_v[0].tolist() == [4, 1]  # row 0 is excluded, never returned
    with pytest.raises(ValueError):
        top_m(query, index, 5, valid=valid)


def test_aggregation_weights_sum_to_one_and_match_the_hand_values():
    sims = torch.tensor([[0.9, 0.7], [0.5, 0.5]])
    w = aggregation_weights(sims, "softmax", tau=0.1)
    e2 = math.exp(2.0)  # exp(0.9/0.1 − 0.7/0.1)
    torch.testing.assert_close(w, torch.tensor([[e2 / (1 + e2), 1 / (1 + e2)], [0.5, 0.5]]))
    torch.testing.assert_close(aggregation_weights(sims, "uniform"), torch.full((2, 2), 0.5))
    rnd = aggregation_weights(torch.randn(7, 5), "softmax", tau=0.05)
    torch.testing.assert_close(rnd.sum(1), torch.ones(7))
    table = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    e = aggregate(torch.tensor([[1, 2], [2, 2]]), torch.tensor([[0.25, 0.75], [0.5, 0.5]]), table)
    torch.testing.assert_close(e, torch.tensor([[2.5, -0.25], [3.0, -1.0]]))
    with pytest.raises(ValueError):
        aggregation_weights(sims, "max")


def test_info_nce_by_hand_and_same_item_columns_masked():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # row 0: logits (1, .6)/τ with τ = 1 → −log(e/(e + e^.6)); row 1: (0, .8) → −log(e^.8/(1+e^.8))
    want = 0.5 * (-math.log(math.e / (math.e + math.exp(0.6)))
                  - math.log(math.exp(0.8) / (1 + math.exp(0.8))))
    assert info_nce(a, b, 1.0).item() == pytest.approx(want, rel=1e-6)
    # the same item in both columns: no negatives left, the loss is 0
    assert info_nce(a, b, 1.0, ids=torch.tensor([3, 3])).item() == pytest.approx(0.0, abs=1e-7)


def test_ridge_map_recovers_a_linear_map():
    src = torch.randn(50, 4, dtype=torch.float64)
    true = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(ridge_map(src, src @ true, l2=0.0), true)


# ----------------------------------------------------------------------------------- CDIM
def test_cooccur_pairs_read_only_training_events_by_hand():
    # u1: a b c d e (valid d, test e); u2: c a b (valid a, test b): training a b c | c
    frame = pd.DataFrame({"user": ["u1"] * 5 + ["u2"] * 3,
                          "item": ["a", "b", "c", "d", "e", "c", "a", "b"],
                          "ts": [1, 2, 3, 4, 5, 1, 2, 3]})
    d = domain_from_frame(frame, "seq")
    raw = dict(zip(d.items["item"], d.items["raw_id"], strict=True))

    def named(pairs):
        return sorted((raw[i], raw[j]) for i, j in pairs.tolist())

    assert named(cooccur_pairs(d, 1)) == [("a", "b"), ("b", "c")]
    assert named(cooccur_pairs(d, 2)) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_indexable_items_need_text_and_a_training_event(tmp_path):
    d = shop(tmp_path, titles=["red mug", "", *[f"blue {t}" for t in THINGS] * 2][:12])
    x = np.ones((d.n_items + 1, 3), dtype=np.float32)
    empty = d.items.loc[d.items["title"] == "", "item"].to_numpy()
    x[empty] = 0
    ok = indexable_items(d, x)
    assert not ok[0] and not ok[empty].any()
    assert (ok[1:] == ((d.train_item_counts[1:] > 0) & (x[1:, 0] > 0))).all()


def test_cdim_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="not implemented"):
        resolve_cfg({"behaviour_positive": "id_neighbors"})
    with pytest.raises(ConfigError, match="valid keys"):
        resolve_cfg({"heads": [4]})
    with pytest.raises(ConfigError, match="valid keys"):
        make_model("idp", retrieval={"k": 3})
    with pytest.raises(ConfigError, match="ce"):
        make_model("idp", optim={"pretrain": {"loss": "bce_1neg"}})


def test_behaviour_loss_pulls_co_consumed_items_together_and_cache_keeps_rng(tmp_path):
    """Items with unrelated titles that users consume in a fixed order (x0 → x1 → … ): CDIM's
    behaviour loss makes adjacent items closer than the text-only matcher does."""
    n_items = 12
    rows = [(f"u{u}", f"i{(u + k) % n_items}", k) for u in range(60) for k in range(6)]
    titles = [f"{COLOURS[i % 5]} {THINGS[(3 * i) % 7]} {i}" for i in range(n_items)]
    d = domain_from_frame(pd.DataFrame(rows, columns=["user", "item", "ts"]), "chain",
                          items=pd.DataFrame({"item": [f"i{i}" for i in range(n_items)],
                                              "title": titles}), text_fields=["title"])
    d.env = text_env(tmp_path)
    pairs = cooccur_pairs(d)

    def mean_pair_cos(positive):
        cfg = {"head": [32, 16], "behaviour_positive": positive,
               "optim": {"epochs": 20, "batch_size": 256}}
        m = fit_matcher(d, cfg, DIM)
        c = torch.from_numpy(m.index)
        return float((c[pairs[:, 0]] * c[pairs[:, 1]]).sum(1).mean()), m

    state = torch.random.get_rng_state()
    beh, m1 = mean_pair_cos("cooccur")
    txt, m0 = mean_pair_cos("none")
    assert beh > txt + 0.2, (beh, txt)
    assert torch.equal(torch.random.get_rng_state(), state)  # training ran on a forked RNG
    again = fit_matcher(d, {"head": [32, 16], "optim": {"epochs": 20, "batch_size": 256}}, DIM)
    assert (m1.key == again.key) and np.array_equal(m1.index, again.index)  # cache hit
    assert (tmp_path / "cache" / "features" / "cdim" / m1.key / "head.pt").exists()
    rho_beh = similarity_spearman(m1.index, d, n_pairs=2000, min_count=1)["rho"]
    rho_txt = similarity_spearman(m0.index, d, n_pairs=2000, min_count=1)["rho"]
    assert rho_beh > rho_txt + 0.1, (rho_beh, rho_txt)  # matcher similarity tracks behaviour


# ------------------------------------------------------------------ binding, tables, scoring
def test_identical_text_retrieves_that_source_item_and_m1_copies_its_row(tmp_path):
    src = shop(tmp_path, "src", n_items=12)
    titles = [title_of(src, 5), "green lamp extra words", "white sofa", "black vase"]
    tgt = shop(tmp_path, "tgt", n_users=10, n_items=4, seed=3, titles=titles)
    model = pretrained(src, retrieval={"m": 1, "weighting": "uniform"})
    nb = model.neighbours(tgt)
    j = int(tgt.items.loc[tgt.items["title"] == titles[0], "item"].iloc[0])
    assert int(nb["ids"][j, 0]) == 5
    assert float(nb["sims"][j, 0]) == pytest.approx(1.0, abs=1e-5)
    e = model.retrieved_table(tgt)
    torch.testing.assert_close(e[j], model.net.item_emb.weight[5].detach())
    assert torch.equal(e[0], torch.zeros_like(e[0]))
    # every retrieved id is a retrievable source item
    assert bool((model.cdim_index[nb["ids"][1:]].abs().sum(-1) > 0).all())


def test_softmax_aggregation_is_the_weighted_sum_of_the_neighbours(tmp_path):
    src = shop(tmp_path, "src", n_items=12)
    tgt = shop(tmp_path, "tgt", n_users=10, n_items=6, seed=3)
    model = pretrained(src, retrieval={"m": 3, "tau": 0.2})
    nb = model.neighbours(tgt)
    w = torch.softmax(nb["sims"][1:] / 0.2, dim=1)
    torch.testing.assert_close(nb["weights"][1:], w)
    torch.testing.assert_close(nb["weights"][1:].sum(1), torch.ones(tgt.n_items))
    want = (w[..., None] * model.net.item_emb.weight.detach()[nb["ids"][1:]]).sum(1)
    torch.testing.assert_close(model.retrieved_table(tgt)[1:], want)
    assert (nb["sims"][1:, :-1] >= nb["sims"][1:, 1:]).all()  # sorted, most similar first


def test_union_pretraining_batches_one_source_each_with_that_sources_softmax(tmp_path):
    a, b = shop(tmp_path, "a", n_items=12), shop(tmp_path, "b", n_items=9, seed=1)
    union = union_of(tmp_path, a, b)
    torch.manual_seed(0)
    model = make_model("idp", n_items=union.n_items, **SMALL)
    model.fit_inputs(union)
    batches = list(model.train_batches(union, np.random.default_rng(0), union.train_users()))
    n_a = a.n_items
    for batch in batches:
        off, n = batch["part"]
        real = batch["items"][batch["items"] > 0]
        assert (real > off).all() and (real <= off + n).all()
    assert {bt["part"] for bt in batches} == {(0, n_a), (n_a, b.n_items)}
    batch = next(bt for bt in batches if bt["part"][0] == n_a)
    model.train()
    torch.manual_seed(1)
    got = model.loss(batch)
    torch.manual_seed(1)  # the same dropout draws, by hand: CE over b's items + padding column
    items = batch["items"]
    h = model.encode(items[:, :-1], model.net.item_emb.weight)
    sel = (items[:, :-1] > 0) & (items[:, 1:] > 0) & batch["target_mask"]
    w = model.net.item_emb.weight
    logits = h[sel] @ torch.cat([w[:1], w[n_a + 1:]]).T
    torch.testing.assert_close(got, F.cross_entropy(logits, items[:, 1:][sel] - n_a))
    # bound: each item knows its source; each source is scored with its own rows
    assert model.bound and set(model.pre_domain[1:].tolist()) == {
        int(a.data_hash[:15], 16), int(b.data_hash[:15], 16)}
    model.eval()
    assert model.table_kind(union) == "pre" and model.table_kind(b) == "part"
    model.fit_inputs(union)
    s = scores(model, union, n=30)
    users_b = torch.from_numpy(union.user[union.queries("test").pos[:30]] > a.n_users)
    assert torch.isinf(s[users_b, 1:n_a + 1]).all() and torch.isinf(s[~users_b, n_a + 1:]).all()
    model.fit_inputs(b)
    torch.testing.assert_close(model.item_table(b)[1:], w[n_a + 1:])


def test_one_domain_idp_is_sasrec(tmp_path):
    d = shop(tmp_path)
    torch.manual_seed(0)
    sas = make_model("sasrec", n_items=d.n_items, hidden=8, inner=8, heads=2, max_len=10)
    idp = pretrained(d)
    missing = idp.net.load_state_dict(sas.net.state_dict())
    assert not missing.missing_keys and not missing.unexpected_keys
    sas.eval()
    items = query_batch(d, d.queries("test").pos[:5], 10).items
    torch.testing.assert_close(idp.encode(items, idp.net.item_emb.weight), sas.net.encode(items))
    idp.fit_inputs(d)
    torch.testing.assert_close(scores(idp, d), scores(sas, d))
    batch = next(iter(idp.train_batches(d, np.random.default_rng(0), d.train_users())))
    torch.testing.assert_close(idp.loss(batch), sas.loss(batch))


def test_unbound_model_cannot_retrieve(tmp_path):
    d, other = shop(tmp_path), shop(tmp_path, "other", n_items=7)
    model = make_model("idp", n_items=d.n_items, **SMALL)
    model.fit_inputs(other)
    with pytest.raises(ConfigError, match="never pre-trained"):
        scores(model, other)


def test_text_only_ablation_maps_cdim_vectors_to_id_space(tmp_path):
    src, tgt = shop(tmp_path, "src"), shop(tmp_path, "tgt", n_items=6, seed=3)
    model = pretrained(src, retrieval={"mode": "text_only", "ridge_l2": 0.0})
    valid = model.cdim_index.abs().sum(1) > 0
    proj = torch.linalg.lstsq(model.cdim_index[valid], model.net.item_emb.weight[valid]).solution
    nb = model.neighbours(tgt)
    torch.testing.assert_close(model.retrieved_table(tgt)[1:], nb["c"][1:] @ proj, atol=1e-4,
                               rtol=1e-4)


# ------------------------------------------------------------------------------ fine-tuning
def test_finetune_starts_from_retrieval_and_freezes_what_it_says(tmp_path):
    src, tgt = shop(tmp_path, "src"), shop(tmp_path, "tgt", n_users=12, n_items=8, seed=3)
    model = pretrained(src)
    e = model.retrieved_table(tgt).clone()
    model.fit_inputs(tgt)
    model.prepare_finetune(tgt, {})
    assert model.table_kind(tgt) == "target"
    torch.testing.assert_close(model.item_table(tgt).detach(), e)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "target_emb" in trainable and "net.item_emb.weight" not in trainable
    assert not any(n.startswith("cdim.") for n in trainable)
    model.prepare_finetune(tgt, {"freeze": "encoder"})
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"target_emb"}
    model.prepare_finetune(tgt, {"freeze": "items"})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "target_emb" not in trainable and "net.blocks.0.ff1.weight" in trainable
    model.prepare_finetune(tgt, {"freeze": "residual", "residual_l2": 0.5})
    assert "target_delta" in {n for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    batch = next(iter(model.train_batches(tgt, np.random.default_rng(0), tgt.train_users())))
    with torch.no_grad():
        model.target_delta.fill_(0.1)
    torch.manual_seed(0)
    with_penalty = model.loss(batch)
    model.residual_l2 = 0.0
    torch.manual_seed(0)
    penalty = 0.5 * 0.01 * model.target_delta.numel()
    assert with_penalty.item() == pytest.approx(model.loss(batch).item() + penalty, rel=1e-5)
    with pytest.raises(ConfigError, match="freeze"):
        model.prepare_finetune(tgt, {"freeze": "all"})
    with pytest.raises(ConfigError, match="does not apply"):
        model.prepare_finetune(tgt, {"mode": "inductive"})
    model.prepare_finetune(tgt, {"freeze": ["net.blocks"]})
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith("net.blocks"))


def test_no_gradient_reaches_rows_of_items_without_training_events(tmp_path):
    src, tgt = shop(tmp_path, "src"), shop(tmp_path, "tgt", n_users=12, n_items=8, seed=3)
    model = pretrained(src)
    model.fit_inputs(tgt)
    model.prepare_finetune(tgt, {})
    users = tgt.train_users()[:3]  # few users: some items have no training event among them
    start = model.target_emb.detach().clone()
    model.train()
    opt = make_optimizer(model, model.optim)
    for batch in model.train_batches(tgt, np.random.default_rng(0), users):
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    _, seen_items = tgt.user_items(users, tgt.indptr[users] + tgt.n_train[users])
    unseen = np.setdiff1d(np.arange(1, tgt.n_items + 1), seen_items)
    assert len(unseen) > 0
    assert torch.equal(model.target_emb.detach()[unseen], start[unseen])
    assert not torch.equal(model.target_emb.detach()[seen_items], start[seen_items])
    model.prepare_finetune(tgt, {"freeze_unseen": False})
    model.train()
    batch = next(iter(model.train_batches(tgt, np.random.default_rng(0), users)))
    model.loss(batch).backward()
    assert model.target_emb.grad[unseen].abs().sum() > 0  # as negatives of the softmax


def test_checkpoints_load_strictly_weights_only(tmp_path):
    a, b = shop(tmp_path, "a"), shop(tmp_path, "b", n_items=9, seed=1)
    tgt = shop(tmp_path, "tgt", n_users=10, n_items=6, seed=3)
    union = union_of(tmp_path, a, b)
    model = pretrained(union)
    path = tmp_path / "pre.pt"
    checkpoint.save(path, {"state_dict": model.state_dict()})
    state = torch.load(path, weights_only=True)["state_dict"]
    again = make_model("idp", n_items=union.n_items, **SMALL)
    checkpoint.load_state(again, state)
    again.eval()
    again.fit_inputs(tgt)
    model.fit_inputs(tgt)
    torch.testing.assert_close(scores(again, tgt), scores(model, tgt))  # zero-shot, retrieved
    assert again.table_kind(a) == "part" and again.matcher_key_str() == model.matcher_key_str()
    # a pretrain checkpoint into a model prepared for fine-tuning: only the target table is new
    again.prepare_finetune(tgt, {})
    checkpoint.load_state(again, state, "finetune")
    with pytest.raises(CheckpointError):
        checkpoint.load_state(again, state)
    # the finetune stage's reload: build → fit_inputs → prepare_finetune → strict load
    model.prepare_finetune(tgt, {"freeze": "residual"})
    with torch.no_grad():
        model.target_delta.normal_()
    fresh = make_model("idp", n_items=union.n_items, **SMALL)
    fresh.fit_inputs(tgt)
    fresh.prepare_finetune(tgt, {"freeze": "residual"})
    checkpoint.load_state(fresh, model.state_dict())
    fresh.eval()
    model.eval()
    torch.testing.assert_close(scores(fresh, tgt), scores(model, tgt))


# ---------------------------------------------------------------------------- cold setting
def test_cold_users_are_reproducible_by_seed_and_shared_by_models(tmp_path):
    d = shop(tmp_path, n_users=40)
    all_users = d.train_users()
    u0, u0_again, u1 = (d.train_users(0.25, 0), d.train_users(0.25, 0), d.train_users(0.25, 1))
    assert np.array_equal(u0, u0_again) and not np.array_equal(u0, u1)
    assert len(u0) == round(0.25 * len(all_users)) and np.isin(u0, all_users).all()
    # the same users reach IDP's and SASRec's samplers (the stage hands both the same array)
    seen = {}
    sasrec = make_model("sasrec", n_items=d.n_items)
    for name, model in (("idp", pretrained(d)), ("sasrec", sasrec)):
        if name == "idp":
            model.fit_inputs(d)
        b = model.train_batches(d, np.random.default_rng(0), u0)
        seen[name] = sorted(set(np.concatenate([bt["items"][bt["items"] > 0].numpy()
                                                for bt in b])))
    assert seen["idp"] == seen["sasrec"]


def test_cold_finetune_looks_up_the_full_pretraining_and_retrieval_keys_share_it(tmp_path):
    from types import SimpleNamespace

    from recx.stages.checkpoints import all_users, pretrained
    from recx.stages.common import Context
    from tests.conftest import compose

    sources = [SimpleNamespace(data_hash="0123456789ab")]  # only the hash enters the key
    cfg = compose("finetune", ["model=idp", "source=[tiny]", "target=tiny_b", "text=hashing"],
                  root=tmp_path)

    def parent_hash(**changes):
        c = cfg.copy()
        for key, value in changes.items():
            OmegaConf.update(c, key, value)
        ctx = Context(cfg=all_users(c), run_dir=tmp_path, device=torch.device("cpu"))
        ctx.source_domains = lambda: sources
        return pretrained(ctx).hash

    base = parent_hash()
    assert parent_hash(**{"train.user_fraction": 0.1}) == base  # cold: the target's users only
    assert parent_hash(**{"model.retrieval.m": 3, "model.finetune.freeze": "items",
                          "model.optim.finetune.lr": 0.01, "model.transfer_encoder": False}) == base
    # the matcher's settings act after pre-training (attach_pretraining refits it); its head
    # sizes shape the checkpoint
    assert parent_hash(**{"model.cdim.alpha_beh": 0.0,
                          "model.cdim.behaviour_positive": "none"}) == base
    assert parent_hash(**{"model.cdim.head": [64, 32]}) != base
    assert parent_hash(**{"model.optim.pretrain.lr": 0.01}) != base
    cold = cfg.copy()
    cold.train.user_fraction = 0.1
    assert all_users(cold).train.user_fraction == 1.0 and cold.train.user_fraction == 0.1


# ------------------------------------------------------------------- fine-tuned sentence encoder
@pytest.mark.slow
def test_finetune_backbone_trains_the_sentence_transformer_and_encodes_targets_with_it(tmp_path):
    """cdim.finetune_backbone=true with all-MiniLM-L6-v2 (a few CPU steps): the fine-tuned encoder
    is saved in the CDIM cache entry, target texts are encoded with it, identical texts still
    retrieve each other, and the frozen shared text cache is untouched."""
    from recx.data.features.text import item_embeddings
    from recx.models.cdim_training import matcher_entry

    env = FeatureEnv(cache_root=tmp_path / "cache", seed=0, text=OmegaConf.structured(TextSchema))
    src, tgt = shop(tmp_path, "src"), shop(tmp_path, "tgt", n_users=10, n_items=4, seed=3)
    tgt.items.loc[tgt.items["item"] == 1, "title"] = title_of(src, 5)
    src.env = tgt.env = env
    frozen = item_embeddings(src).copy()
    cdim = {"finetune_backbone": True, "head": [64, 32],
            "backbone_optim": {"batch_size": 8, "steps_per_epoch": 3, "lr": 1e-4}}
    model = pretrained(src, plm_size=384, cdim=cdim, retrieval={"m": 1})
    key = model.matcher_key_str()
    assert (matcher_entry(env.cache_root, key) / "encoder").is_dir()
    assert np.array_equal(item_embeddings(src), frozen)
    nb = model.neighbours(tgt)
    assert int(nb["ids"][1, 0]) == 5 and float(nb["sims"][1, 0]) == pytest.approx(1.0, abs=1e-4)
    assert not np.allclose(model._text(tgt).numpy()[1], item_embeddings(tgt)[1], atol=1e-3)
