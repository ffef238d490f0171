"""GRU4Rec (Hidasi et al. 2016) with RecBole 1.2.1 defaults (models/baselines.md §4).

Training: `prefix` (default, RecBole's scheme): every prefix of a training sequence is one sample,
its last ≤ max_len items the history and the next item the target; full-softmax CE over all
items. `every_position` (an option) feeds SASRec's windows and predicts every next item, which the
GRU's causality allows.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recx.data.sequences import SeqBatch, prefix_batches, window_batches
from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, RecModel
from recx.models.modules.gru4rec_net import GRU4RecNet


class GRU4Rec(RecModel):
    """Parameters (values: conf/model/gru4rec.yaml)
    ----------
    max_len : int
        Longest history (RecBole MAX_ITEM_LIST_LENGTH).
    embedding : int
        Item embedding size (RecBole embedding_size); also the size of the output projection.
    hidden : int
        GRU hidden size (RecBole hidden_size).
    layers : int
        GRU layers (RecBole num_layers).
    dropout : float
        Dropout on the input embeddings (RecBole dropout_prob).
    optim : dict
        Training recipe: the shared keys (loss ce; sampler prefix | every_position) plus
        batch_size (RecBole's train_batch_size) and stride (every_position only).
    """

    name = "gru4rec"
    capabilities = Capabilities(sequential=True)
    recipe_keys = ("batch_size", "stride")

    def __init__(self, n_items: int = 0, *, max_len: int, embedding: int, hidden: int,
                 layers: int, dropout: float, optim: dict):
        super().__init__(n_items, self.read_recipe(optim))
        if self.optim["loss"] != "ce":
            raise ConfigError(f"model.optim.loss={self.optim['loss']!r} for gru4rec",
                              hint="gru4rec trains with ce (full softmax, RecBole's loss_type CE)")
        if self.optim["sampler"] not in ("prefix", "every_position"):
            raise ConfigError(f"model.optim.sampler={self.optim['sampler']!r} for gru4rec",
                              hint="use prefix (RecBole) or every_position")
        self.max_len = max_len
        self.net = GRU4RecNet(n_items, embedding, hidden, layers, dropout)

    # ------------------------------------------------------------------ training batches
    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        bs = int(self.optim["batch_size"])
        if self.optim["sampler"] == "every_position":
            n, windows, n_samples = window_batches(domain, rng, users, self.max_len,
                                                   self.optim["stride"], bs)

            def gen_windows():
                for items, target_mask, _ in windows():
                    yield {"items": torch.from_numpy(items),
                           "target_mask": torch.from_numpy(target_mask)}

            return Batches(n, gen_windows, n_samples=n_samples)
        n, prefixes, n_samples = prefix_batches(domain, rng, users, self.max_len, bs)

        def gen_prefix():
            for hist, pos in prefixes():
                yield {"history": torch.from_numpy(hist),
                       "target": torch.from_numpy(domain.item[pos].astype(np.int64))}

        return Batches(n, gen_prefix, n_samples=n_samples)

    # ------------------------------------------------------------------ maths
    def loss(self, batch: dict) -> torch.Tensor:
        emb = self.net.item_emb.weight
        if "history" in batch:  # prefix: one target per sample
            s = self.net.last_state(batch["history"].to(self.device))
            return F.cross_entropy(s @ emb.T, batch["target"].to(self.device))
        items = batch["items"].to(self.device)
        inp, tgt = items[:, :-1], items[:, 1:]
        h = self.net(inp)
        sel = (inp > 0) & (tgt > 0) & batch["target_mask"].to(self.device)
        return F.cross_entropy(h[sel] @ emb.T, tgt[sel])

    def user_state(self, batch: SeqBatch) -> torch.Tensor:
        return self.net.last_state(batch.items.to(self.device))

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        return self.user_state(batch) @ self.net.item_emb.weight.T

    def score_candidates(self, batch: SeqBatch, cand: torch.Tensor) -> torch.Tensor:
        h = self.user_state(batch)
        return (h[:, None, :] * self.net.item_emb(cand.to(self.device))).sum(-1)
