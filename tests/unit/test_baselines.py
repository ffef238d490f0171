"""BERT4Rec and GRU4Rec (models/baselines.md §3, §4): sizes, padding, masking statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recx.data.sequences import SeqBatch
from tests.conftest import make_model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def seq_batch(items: list[list[int]], width: int) -> SeqBatch:
    """Left-padded SeqBatch of the given histories (most recent item last)."""
    rows = [[0] * (width - len(r)) + r[-width:] for r in items]
    t = torch.tensor(rows, dtype=torch.int64)
    z = torch.zeros(len(rows), dtype=torch.int64)
    return SeqBatch(items=t, ts=torch.zeros_like(t), lengths=(t > 0).sum(1), query_ts=z,
                    users=z, targets=z, event_idx=np.zeros(t.shape, np.int64),
                    query_pos=np.zeros(len(rows), np.int64))


@pytest.mark.parametrize("n", [1682, 37])
def test_parameter_counts_follow_the_formulas(n):
    e, h = 64, 128
    # embedding (N+1)·e, bias-free GRU 3·(e·h + h·h), projection h·e + e
    gru = make_model("gru4rec", n_items=n)
    assert n_params(gru) == (n + 1) * e + 3 * (e * h + h * h) + h * e + e
    d, inner, length, layers = 64, 256, 50, 2
    block = 4 * (d * d + d) + 2 * d + (d * inner + inner + inner * d + d) + 2 * d
    bert = ((n + 2) * d + length * d + 2 * d + layers * block  # items + [MASK], positions, LN
            + (d * d + d) + 2 * d + (n + 1))  # head: dense, LayerNorm, output bias
    assert n_params(make_model("bert4rec", n_items=n)) == bert


def test_recbole_parameter_counts_on_ml100k():
    # RecBole 1.2.1 on ml-100k (1682 items): GRU4Rec 189,696, BERT4Rec 217,043
    assert n_params(make_model("gru4rec", n_items=1682)) == 189_696
    assert n_params(make_model("bert4rec", n_items=1682)) == 217_043


def test_gru4rec_ignores_left_padding_and_matches_an_unpadded_gru():
    torch.manual_seed(0)
    m = make_model("gru4rec", n_items=20).eval()
    hist = [[3, 7, 1], [5, 2, 9, 4, 11]]
    narrow, wide = m.score_all(seq_batch(hist, 6)), m.score_all(seq_batch(hist, 30))
    assert torch.allclose(narrow, wide, atol=1e-6)
    # by hand: the GRU over the real items only, projected, dotted with the item table
    with torch.no_grad():
        x = m.net.item_emb(torch.tensor([hist[1]]))
        out, _ = m.net.gru(x)
        s = m.net.dense(out[0, -1]) @ m.net.item_emb.weight.T
    assert torch.allclose(wide[1], s, atol=1e-5)


def test_gru4rec_every_position_states_are_causal():
    torch.manual_seed(0)
    net = make_model("gru4rec", n_items=20).eval().net
    a = torch.tensor([[0, 0, 3, 7, 1, 5]])
    b = a.clone()
    b[0, -1] = 9  # change the most recent item
    ha, hb = net(a), net(b)
    assert torch.allclose(ha[0, 2:5], hb[0, 2:5]) and not torch.allclose(ha[0, 5], hb[0, 5])
    assert torch.allclose(ha[0, -1], net.last_state(a)[0], atol=1e-6)


def test_bert4rec_attention_is_bidirectional_and_inference_uses_max_len_minus_one():
    torch.manual_seed(0)
    m = make_model("bert4rec", n_items=30, max_len=8).eval()
    a = torch.tensor([[0, 0, 4, 5, 6, 31]])  # 31 = [MASK]
    b = a.clone()
    b[0, -1] = 7  # a later token changes the earlier outputs
    assert not torch.allclose(m.net(a)[0, 2], m.net(b)[0, 2])
    # 12 items of history: only the last 7 (max_len − 1) are read, then [MASK]
    hist = list(range(1, 13))
    s_long = m.score_all(seq_batch([hist], 8))
    s_short = m.score_all(seq_batch([hist[-7:]], 8))
    assert torch.allclose(s_long, s_short)
    manual = m.net.logits(m.net.head(m.net(torch.tensor([[*hist[-7:], 31]]))[:, -1]))
    assert torch.allclose(s_long, manual)
    cand = torch.tensor([[3, 12, 30]])
    assert torch.allclose(m.score_candidates(seq_batch([hist], 8), cand),
                          s_long.gather(1, cand), atol=1e-5)


def full_histories(b: int, length: int, n_items: int = 50) -> np.ndarray:
    return np.random.default_rng(1).integers(1, n_items + 1, size=(b, length))


def test_bert4rec_masking_rate_and_recent_prediction_cap():
    m = make_model("bert4rec", n_items=50, max_len=50, ft_ratio=0.0)
    rng = np.random.default_rng(0)
    hist = full_histories(4000, 50)
    hist[:, :20] = 0  # left padding is never masked
    out = m.mask_batch(hist, rng)
    masked = out["inputs"].numpy() == 51
    assert not masked[:, :20].any()
    rate = masked[:, 20:].mean()
    # 120,000 Bernoulli(0.2) draws: sd 0.00115
    assert abs(rate - 0.2) < 0.005
    loss = out["loss_mask"].numpy()
    assert (loss <= masked).all() and loss.sum(1).max() <= 10  # int(0.2 · 50)
    # the positions that carry loss are the most recent masked ones
    for row_m, row_l in zip(masked[:50], loss[:50], strict=True):
        pos = np.flatnonzero(row_m)
        assert np.flatnonzero(row_l).tolist() == pos[-10:].tolist()
    assert torch.equal(out["labels"], torch.from_numpy(hist))


def test_bert4rec_ft_ratio_per_batch_and_per_sample():
    hist = full_histories(200, 10)
    m = make_model("bert4rec", n_items=50, max_len=10, ft_ratio=0.5)
    rng = np.random.default_rng(0)
    last_only = 0
    for _ in range(400):
        masked = m.mask_batch(hist, rng)["inputs"].numpy() == 51
        if masked[:, :-1].sum() == 0:  # the whole batch masks only its last item
            assert masked[:, -1].all()
            last_only += 1
    assert abs(last_only / 400 - 0.5) < 0.1  # binomial(400, 0.5): sd 0.025
    s = make_model("bert4rec", n_items=50, max_len=10, ft_ratio=0.5, ft_unit="sample")
    masked = s.mask_batch(full_histories(20000, 10), np.random.default_rng(0))["inputs"] == 51
    only_last = (masked[:, -1] & (masked[:, :-1].sum(1) == 0)).float().mean().item()
    # P(last only) = 0.5 + 0.5 · 0.2 · 0.8⁹ = 0.5134; sd of the mean 0.0035
    assert abs(only_last - 0.5134) < 0.015


def test_bert4rec_ensure_mask_masks_one_item_in_every_row():
    m = make_model("bert4rec", n_items=50, max_len=10, ft_ratio=0.0, ensure_mask=True)
    hist = np.zeros((500, 10), dtype=np.int64)
    hist[:, -2:] = 7  # two real items: without the option 64 % of rows would mask none
    masked = m.mask_batch(hist, np.random.default_rng(0))["inputs"].numpy() == 51
    assert masked.any(1).all() and not masked[:, :-2].any()


def test_bert4rec_loss_counts_the_masked_positions_only():
    torch.manual_seed(0)
    m = make_model("bert4rec", n_items=20, max_len=6, dropout=0.0, attn_dropout=0.0)
    hist = np.array([[0, 0, 3, 4, 5, 6]])
    batch = {"inputs": torch.tensor([[0, 0, 21, 4, 21, 6]]), "labels": torch.from_numpy(hist),
             "loss_mask": torch.tensor([[False, False, True, False, True, False]])}
    logits = m.net.logits(m.net.head(m.net(batch["inputs"])))[0]
    manual = -(torch.log_softmax(logits[2], -1)[3] + torch.log_softmax(logits[4], -1)[5]) / 2
    assert torch.allclose(m.loss(batch), manual, atol=1e-6)
