"""SASRec (Kang & McAuley 2018) with RecBole 1.2.1 defaults (models/baselines.md §2).

Training: `every_position` (default; the original SASRec scheme) cuts each user's training
sequence into windows of ≤ max_len + 1 events and predicts every next item under the causal mask,
so an epoch visits each training transition once. `prefix` is RecBole's scheme (one sample per
prefix, target = its last item). Loss: full-softmax CE over all items (`ce`), or binary CE with
one sampled negative per position (`bce_1neg`, the original SASRec).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recx.data.sequences import SeqBatch, prefix_batches, window_batches
from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, RecModel, uniform_negatives
from recx.models.modules.sasrec_net import SASRecNet


class SASRec(RecModel):
    """Parameters (values: conf/model/sasrec.yaml)
    ----------
    max_len : int
        Longest history window (RecBole MAX_ITEM_LIST_LENGTH).
    hidden, inner, layers, heads : int
        Transformer sizes (RecBole hidden_size, inner_size, n_layers, n_heads).
    dropout, attn_dropout : float
        Hidden and attention dropout (RecBole hidden_dropout_prob, attn_dropout_prob).
    act : str;  layer_norm_eps : float
    init_range : float
        Std of the normal initialisation (RecBole initializer_range).
    norm_first : bool
        Pre-LN blocks (the original SASRec code) instead of RecBole's post-LN.
    optim : dict
        Training recipe: the shared keys (`recx.models.base.RECIPE_KEYS`; loss ce | bce_1neg,
        sampler every_position | prefix) plus batch_size and stride (targets per
        every-position window: with 25 every target but a sequence's first 25 sees at least 25
        items of history — with 50 SASRec stays ~9% NDCG@10 behind RecBole on ml-100k).
    """

    name = "sasrec"
    capabilities = Capabilities(sequential=True)
    recipe_keys = ("batch_size", "stride")

    def __init__(self, n_items: int = 0, *, max_len: int, hidden: int, inner: int, layers: int,
                 heads: int, dropout: float, attn_dropout: float, act: str,
                 layer_norm_eps: float, init_range: float, norm_first: bool, optim: dict):
        super().__init__(n_items, SASRec.read_recipe(optim))  # IDP passes a phase recipe
        if self.optim["loss"] not in ("ce", "bce_1neg"):
            raise ConfigError(f"model.optim.loss={self.optim['loss']!r} for sasrec",
                              hint="use ce or bce_1neg")
        if self.optim["sampler"] not in ("every_position", "prefix"):
            raise ConfigError(f"model.optim.sampler={self.optim['sampler']!r} for sasrec",
                              hint="use every_position or prefix")
        self.max_len = max_len
        self.net = SASRecNet(n_items, max_len, hidden, inner, layers, heads, dropout,
                             attn_dropout, act, layer_norm_eps, init_range, norm_first)

    # ------------------------------------------------------------------ training batches
    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        bs = int(self.optim["batch_size"])
        if self.optim["sampler"] == "every_position":
            n, windows, n_samples = window_batches(domain, rng, users, self.max_len,
                                                   self.optim["stride"], bs)

            def gen():
                for items, target_mask, batch_users in windows():
                    batch = self._with_negatives(domain, rng, torch.from_numpy(items),
                                                 users=batch_users)
                    batch["target_mask"] = torch.from_numpy(target_mask)
                    yield batch

            return Batches(n, gen, n_samples=n_samples)
        n, prefixes, n_samples = prefix_batches(domain, rng, users, self.max_len, bs)

        def gen_prefix():
            for hist, pos in prefixes():
                items = np.concatenate([hist, domain.item[pos][:, None]], axis=1)
                yield self._with_negatives(domain, rng, torch.from_numpy(items.astype(np.int64)),
                                           users=domain.user[pos], last_only=True)

        return Batches(n, gen_prefix, n_samples=n_samples)

    def _with_negatives(self, domain, rng, items, users, last_only=False) -> dict:
        batch = {"items": items, "last_only": last_only}
        if self.optim["loss"] == "bce_1neg":
            seen = _SeenLookup(domain, users)
            batch["neg"] = torch.from_numpy(uniform_negatives(
                rng, self.n_items, items[:, 1:].shape, exclude=seen))
        return batch

    # ------------------------------------------------------------------ maths
    def loss(self, batch: dict) -> torch.Tensor:
        items = batch["items"].to(self.device)
        inp, tgt = items[:, :-1], items[:, 1:]
        h = self.net.encode(inp)
        if batch["last_only"]:
            h, tgt = h[:, -1:], tgt[:, -1:]
            sel = tgt > 0
        else:
            sel = (inp > 0) & (tgt > 0) & batch["target_mask"].to(self.device)
        h_sel, t_sel = h[sel], tgt[sel]
        emb = self.net.item_emb.weight
        if self.optim["loss"] == "ce":
            return F.cross_entropy(h_sel @ emb.T, t_sel)
        neg = batch["neg"].to(self.device)
        if batch["last_only"]:
            neg = neg[:, -1:]
        pos_logit = (h_sel * emb[t_sel]).sum(-1)
        neg_logit = (h_sel * emb[neg[sel]]).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))

    def user_state(self, batch: SeqBatch) -> torch.Tensor:
        return self.net.encode(batch.items.to(self.device))[:, -1]

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        return self.user_state(batch) @ self.net.item_emb.weight[: self.n_items + 1].T

    def score_candidates(self, batch: SeqBatch, cand: torch.Tensor) -> torch.Tensor:
        h = self.user_state(batch)
        return (h[:, None, :] * self.net.item_emb(cand.to(self.device))).sum(-1)



class _SeenLookup:
    """`exclude` callback: is a negative among its user's training items?"""

    def __init__(self, domain, users):
        self.sets = [set(domain.item[domain.indptr[u]:domain.indptr[u] + domain.n_train[u]]
                         .tolist()) for u in users.tolist()]

    def __call__(self, neg: np.ndarray) -> np.ndarray:
        return np.array([[x in s for x in row] for row, s in zip(neg.tolist(), self.sets,
                                                                 strict=True)], dtype=bool)
